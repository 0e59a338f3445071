"""PDDLEnv: AgentBoard's PDDL games (blockworld, gripper, barman, tyreworld) and any STRIPS file pair."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from agentrm_gym.core import StepOutcome, TextEnv, UnknownTask
from agentrm_gym.envs.pddl.engine import State, Task
from agentrm_gym.envs.pddl.generators import DOMAINS, TEST_COUNTS, generate
from agentrm_gym.envs.pddl.parser import Domain, Problem
from agentrm_gym.envs.pddl.planner import oracle_for
from agentrm_gym.envs.pddl.render import HAND_FIRST_ACTIONS, domain_family
from agentrm_gym.perturbation import Perturbation

LOOK_AROUND = "look around"
GOAL_REACHED = " The goal is satisfied."

#: What each built-in domain is about and its action grammar (shown by ``instruction()``).
DESCRIPTIONS: dict[str, str] = {
    "blockworld": (
        "A robot arm rearranges blocks on a table; it holds at most one block at a time.\n"
        "pickup <block>: take a clear block from the table (the arm must be empty).\n"
        "putdown <block>: put the held block on the table.\n"
        "stack <block> <block>: put the held block on a clear block.\n"
        "unstack <block> <block>: take a clear block off the block it is on (the arm must be empty)."
    ),
    "gripper": (
        "A robot with two grippers, left and right, carries balls between rooms.\n"
        "move <room> <room>: go from the room the robot is in to another room.\n"
        "pick <ball> <room> <gripper>: pick up a ball in the robot's room with a free gripper.\n"
        "drop <ball> <room> <gripper>: drop a carried ball in the robot's room."
    ),
    "barman": (
        "You are a robot barman with two hands (left, right) who serves drinks in shot glasses using "
        "dispensers, shot glasses and a shaker.\n"
        "<hand> grasp <container>: take a container from the table with an empty hand.\n"
        "<hand> leave <container>: put a held container on the table.\n"
        "fill-shot <shot> <ingredient> <hand> <other hand> <dispenser>: fill a held clean, empty shot "
        "glass from a dispenser (the other hand must be empty).\n"
        "refill-shot <shot> <ingredient> <hand> <other hand> <dispenser>: refill a held empty shot glass "
        "that was used for the same ingredient.\n"
        "empty-shot <hand> <shot> <beverage>: empty a held shot glass.\n"
        "clean-shot <shot> <beverage> <hand> <other hand>: clean a held empty shot glass.\n"
        "pour-shot-to-clean-shaker <shot> <ingredient> <shaker> <hand> <level> <next level>: pour a held "
        "shot into the clean, empty shaker.\n"
        "pour-shot-to-used-shaker <shot> <ingredient> <shaker> <hand> <level> <next level>: pour a held "
        "shot into the unshaken shaker.\n"
        "empty-shaker <hand> <shaker> <cocktail> <level> <empty level>: empty a held shaken shaker.\n"
        "clean-shaker <hand> <other hand> <shaker>: clean a held empty shaker.\n"
        "shake <cocktail> <ingredient> <ingredient> <shaker> <hand> <other hand>: shake the held shaker "
        "holding both parts of the cocktail (the other hand must be empty).\n"
        "pour-shaker-to-shot <cocktail> <shot> <hand> <shaker> <level> <previous level>: pour the shaken "
        "cocktail into a clean, empty shot glass on the table."
    ),
    "tyreworld": (
        "Replace flat tyres with the intact spares from the boot, using the wrench, jack and pump.\n"
        "open <container> / close <container>: open or close the (unlocked) boot.\n"
        "fetch <object> <container>: take an object out of the open boot.\n"
        "put-away <object> <container>: put a held object into the open boot.\n"
        "loosen <nut> <hub> / tighten <nut> <hub>: with the wrench, on a hub on the ground.\n"
        "jack-up <hub> / jack-down <hub>: lift a hub with the jack, lower it again.\n"
        "undo <nut> <hub> / do-up <nut> <hub>: remove or fasten a loose nut on a jacked-up hub.\n"
        "remove-wheel <wheel> <hub> / put-on-wheel <wheel> <hub>: on a jacked-up, unfastened hub.\n"
        "inflate <wheel>: inflate an intact wheel with the pump."
    ),
}


#: ``perturbation >= 1``: the built-in domains' operators renamed; any other domain's ``name`` -> ``do-name``.
RENAMED_OPERATORS = {
    "pickup": "raise", "putdown": "lower", "stack": "place-on", "unstack": "take-off",
    "move": "travel", "pick": "grab", "drop": "release",
    "grasp": "hold", "leave": "let-go", "fill-shot": "load-shot", "refill-shot": "reload-shot",
    "empty-shot": "drain-shot", "clean-shot": "rinse-shot", "pour-shot-to-clean-shaker": "tip-shot-to-clean-shaker",
    "pour-shot-to-used-shaker": "tip-shot-to-used-shaker", "empty-shaker": "drain-shaker",
    "clean-shaker": "rinse-shaker", "shake": "mix", "pour-shaker-to-shot": "tip-shaker-to-shot",
    "open": "unseal", "close": "seal", "fetch": "retrieve", "put-away": "stow", "loosen": "slacken",
    "tighten": "secure", "jack-up": "lift-hub", "jack-down": "lower-hub", "undo": "unscrew", "do-up": "screw-on",
    "remove-wheel": "detach-wheel", "put-on-wheel": "attach-wheel", "inflate": "pump-up",
}


@functools.lru_cache(maxsize=32)
def perturbation_for(operators: tuple[tuple[str, bool], ...]) -> Perturbation:
    """The renamed grammar of a domain's ``(operator, hand first)`` pairs. The parser also reads an operator
    name anywhere in a command ("Stack b1 on b2."), so any command naming an old operator is refused."""
    renames, retired = [], []
    for name, hand_first in operators:
        new = RENAMED_OPERATORS.get(name, f"do-{name}")
        if hand_first:
            renames.append((f"{{hand}} {name} {{args}}", f"{{hand}} {new} {{args}}"))
        renames += [(f"{name} {{args}}", f"{new} {{args}}"), (name, new)]
        retired += [f"{{words}} {name} {{args}}", f"{{words}} {name}"]
    return Perturbation(
        renames, retired=retired,
        instruction_phrases=[(r"(?m)^(?P<commands>[^:\n]+)(?=: )", ""), (r"(?m)^(?P<command>[a-z][\w-]* <[^\n]*>)$", "")],
        goal_rules=[(r"^The goal is to satisfy the following conditions: ",
                     "Reach a state in which all of these conditions hold: ")],
    )


@functools.lru_cache(maxsize=8)
def builtin_domain(name: str) -> Domain:
    """The compiled domain shipped in ``agentrm_gym/envs/pddl/domains/<name>.pddl``."""
    text = resources.files("agentrm_gym.envs.pddl").joinpath("domains", f"{name}.pddl").read_text()
    return Domain.from_text(text)


@functools.lru_cache(maxsize=128)
def generated_task(domain: str, split: str, index: int) -> Task:
    """The grounded task ``<domain>-<split>-<index>`` (cached: grounding, successors and oracle plans)."""
    return Task(builtin_domain(domain), Problem.from_text(generate(domain, split, index)))


@functools.lru_cache(maxsize=64)
def _file_task(domain_file: str, problem_file: str, mtimes: tuple[float, float]) -> Task:
    return Task.from_files(domain_file, problem_file)


def file_task(domain_file: str | Path, problem_file: str | Path) -> Task:
    """The grounded task of a PDDL file pair (cached until either file changes)."""
    d, p = Path(domain_file).resolve(), Path(problem_file).resolve()
    return _file_task(str(d), str(p), (d.stat().st_mtime, p.stat().st_mtime))


def parse_task_id(task_id: str) -> tuple[str, str, int] | None:
    """``"gripper-train-117"`` -> ``("gripper", "train", 117)``; ``None`` if it is not of that form."""
    parts = task_id.rsplit("-", 2)
    if len(parts) != 3 or parts[0] not in DOMAINS or parts[1] not in ("train", "test") or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


class PDDLEnv(TextEnv):
    """A text game over a PDDL planning problem: act on the world until the goal conditions hold.

    ## Description
    AgentBoard's PDDL task (held-out in AgentRM): four classical planning domains with STRIPS
    semantics, played in words. The test split is 60 fixed generated problems (gripper 20, blockworld
    10, barman 20, tyreworld 10) of AgentBoard's sizes; the train split is other seeds of the same
    generators (ids like ``"blockworld-test-3"``, ``"gripper-train-117"``). With ``domain_file`` and
    ``problem_file`` any STRIPS problem is playable (both splits then hold those problems).

    ## Action Space
    Lower-case commands: the action name and its arguments (``pickup b1``, ``stack b1 b2``,
    ``move rooma roomb``, ``fetch wrench boot``; barman writes the hand first: ``left grasp shot1``).
    Like AgentBoard, "Stack b1 on b2." is read as ``stack b1 b2``. A command that does not parse, names
    an unknown object or whose preconditions fail returns "The action is not valid and therefore takes
    no effect. Please check valid actions." (``action_valid`` False). ``check valid actions`` lists the
    applicable actions; ``look around`` repeats the state.

    ## Observation Space
    The true facts in words, sorted ("B1 is on the table. B2 is on b1. Robot arm is empty. The b2 is
    clear."), followed by "The goal is satisfied." once it is. The goal reads "The goal is to satisfy
    the following conditions: b1 is on b2., b2 is on b3." Unknown domains use
    ``predicate(arg1, arg2) is true.`` sentences.

    ## Rewards
    The increase of the progress rate: the maximum fraction of goal literals satisfied so far.

    ## Starting State
    The problem's initial state.

    ## Episode End
    Terminates when every goal literal holds; truncated by ``max_episode_steps`` (30).

    ## Info keys
    The TextEnv keys (``task``, ``task_id``, ``goal``, ``progress``, ``success``, ``admissible_actions``:
    the applicable ground actions as commands, ``action_valid``, ``steps``). ``env.unwrapped.task`` is
    the grounded :class:`~agentrm_gym.envs.pddl.engine.Task` and ``env.unwrapped.state`` its state.

    ## Arguments
    ``split``: "train" or "test". ``domain_file``, ``problem_file``: a PDDL domain and one problem file
    (or a list of them) to play instead of the built-in problems. ``domains``: restrict the built-in
    problems to some of "gripper", "blockworld", "barman", "tyreworld". ``num_train``: train problems
    per domain (default 1000). ``perturbation`` (0..4: renamed operators, e.g. ``raise b1``,
    ``place-on b1 b2``, and reworded goals; see :mod:`agentrm_gym.perturbation`).

    ## Version History
    v0: initial version.
    """

    task_name = "PDDL"
    command_vocabulary = ("pickup b1", "stack b1 b2", "move rooma roomb", "left grasp shot1", "fetch wrench boot")

    def __init__(
        self,
        split: str = "train",
        render_mode: str | None = None,
        domain_file: str | Path | None = None,
        problem_file: str | Path | Sequence[str | Path] | None = None,
        domains: Sequence[str] | None = None,
        num_train: int = 1000,
        perturbation: int = 0,
    ):
        super().__init__(split=split, render_mode=render_mode, perturbation=perturbation)
        if num_train < 1:
            raise ValueError(f"num_train must be >= 1, got {num_train}")
        self.num_train = num_train
        self.domains = tuple(domains) if domains is not None else DOMAINS
        unknown = [d for d in self.domains if d not in DOMAINS]
        if unknown or not self.domains:
            raise ValueError(f"domains must be some of {', '.join(DOMAINS)}; got {list(self.domains)}")
        self._files: dict[str, tuple[Path, Path]] = {}
        if (domain_file is None) != (problem_file is None):
            raise ValueError("give both domain_file and problem_file (or neither)")
        if domain_file is not None and problem_file is not None:
            problems = [problem_file] if isinstance(problem_file, str | Path) else list(problem_file)
            if not problems:
                raise ValueError("problem_file is an empty list")
            for path in map(Path, problems):
                for p in (Path(domain_file), path):
                    if not p.is_file():
                        raise FileNotFoundError(f"PDDL file not found: {p}")
                key = f"file-{path.stem}"
                if key in self._files:
                    key = f"file-{len(self._files)}-{path.stem}"
                self._files[key] = (Path(domain_file), path)
            file_task(*next(iter(self._files.values())))  # fail early on unsupported or malformed PDDL
        self.task: Task | None = None
        self.state: State = frozenset()
        self._domain_key = ""

    # ------------------------------------------------------------------ tasks
    def task_ids(self, split: str = "test") -> list[str]:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if self._files:
            return list(self._files)
        if split == "test":
            return [f"{d}-test-{i}" for d in self.domains for i in range(TEST_COUNTS[d])]
        return [f"{d}-train-{i}" for d in self.domains for i in range(self.num_train)]

    def _resolve(self, task_id: str) -> tuple[Task, str]:
        if task_id in self._files:
            task = file_task(*self._files[task_id])
            return task, task.domain.name
        parsed = parse_task_id(task_id)
        if self._files or parsed is None or parsed[0] not in self.domains:
            known = ", ".join(self._files) if self._files else "'blockworld-test-3', 'gripper-train-117'"
            raise UnknownTask(f"PDDL: {task_id!r}; ids look like {known}")
        return generated_task(*parsed), parsed[0]

    def _load_task(self, task_id: str) -> tuple[str, str]:
        self.task, self._domain_key = self._resolve(task_id)
        self.state = self.task.init
        return self.task.goal_text(), self.task.state_text(self.state)

    # ------------------------------------------------------------------ dynamics
    def _step(self, action: str) -> StepOutcome:
        assert self.task is not None
        if " ".join(action.lower().rstrip(".").split()) == LOOK_AROUND:
            return StepOutcome(self._describe())
        index = self.task.parse_action(action)
        if index is None or not self.task.is_applicable(self.state, index):
            return StepOutcome(self.invalid_action_message, valid=False)
        self.state = self.task.apply(self.state, index)
        return StepOutcome(self._describe())

    def _describe(self) -> str:
        assert self.task is not None
        text = self.task.state_text(self.state)
        return text + GOAL_REACHED if self.task.is_goal(self.state) else text

    def _progress(self) -> float:
        return self.task.goal_fraction(self.state) if self.task is not None else 0.0

    def _success(self) -> bool:
        return self.task is not None and self.task.is_goal(self.state)

    def admissible_actions(self) -> list[str] | None:
        if self.task is None:
            return None
        return list(self.task.action_texts(self.state))

    def expert_action(self) -> str | None:
        """The next action of a near-optimal plan (A* with h_FF) from the current state."""
        if self.task is None or self.task.is_goal(self.state):
            return None
        index = oracle_for(self.task).next_action(self.state)
        return None if index is None else self.task.actions[index].text

    def perturbation_table(self) -> Perturbation:
        domains = [self.task.domain] if self.task is not None else [builtin_domain(d) for d in self.domains]
        operators = {(s.name, s.name in HAND_FIRST_ACTIONS.get(domain_family(d.name) or "", frozenset()))
                     for d in domains for s in d.actions}
        return perturbation_for(tuple(sorted(operators)))

    def _get_state(self) -> Any:
        return self.state

    def _set_state(self, state: Any) -> None:
        self.state = frozenset(state)

    # ------------------------------------------------------------------ prompts
    def instruction(self) -> str:
        """The domain's description and action grammar (AgentBoard style) for the current task."""
        head = "You are playing a planning game. Your goal is to reach a state where all goal conditions hold."
        if self._domain_key in DESCRIPTIONS:
            body = DESCRIPTIONS[self._domain_key]
        elif self.task is not None:
            lines = [f"{s.name} {' '.join(f'<{p[1:]}>' for p in s.params)}".strip() for s in self.task.domain.actions]
            body = "The actions are:\n" + "\n".join(lines)
        else:
            body = "\n\n".join(DESCRIPTIONS[d] for d in self.domains)
        tail = (
            "Write one action per turn, in lower case, with its arguments. An action whose preconditions do "
            "not hold has no effect. Use 'check valid actions' to list the applicable actions."
        )
        return f"{head}\n{body}\n{tail}"
