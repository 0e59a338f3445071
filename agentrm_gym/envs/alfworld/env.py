"""ALFWorld: household tasks in text on ALFWorld's own PDDL domain, grammar and TextWorld runtime."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from agentrm_gym.core import StepOutcome, TextEnv, UnknownTask
from agentrm_gym.perturbation import Perturbation
from agentrm_gym.registry import require_extra

INVALID = "Nothing happens."
GAME_FILE = "game.tw-pddl"
CACHE_VERSION = "v1"
_GAME_DIR = re.compile(r"(?P<type>[a-z_]+)-(?P<obj>[A-Za-z]+)-(?P<mrecep>[A-Za-z]+)-(?P<recep>[A-Za-z]+)-\d+")


_PUT = re.compile(r"^put (.+?) (?:in|on|in/on|into|onto) (.+)$")
#: ``perturbation >= 1``: AgentRM's robustness renames ("go to" -> "move to", "take X from Y" -> "from Y take
#: X") and more; the classic ``put X in/on Y`` alias is refused with the rest of the old grammar.
PERTURBATION = Perturbation(
    [("go to {recep}", "move to {recep}"), ("take {obj} from {recep}", "from {recep} take {obj}"),
     ("move {obj} to {recep}", "place {obj} in/on {recep}"), ("open {recep}", "pull open {recep}"),
     ("close {recep}", "push shut {recep}"), ("clean {obj} with {recep}", "wash {obj} using {recep}"),
     ("heat {obj} with {recep}", "warm {obj} using {recep}"), ("cool {obj} with {recep}", "chill {obj} using {recep}"),
     ("slice {obj} with {tool}", "cut {obj} using {tool}"), ("use {obj}", "switch on {obj}"),
     ("examine {thing}", "inspect {thing}"), ("inventory", "check inventory")],
    retired=[f"put {{obj}} {prep} {{recep}}" for prep in ("in", "on", "in/on", "into", "onto")],
    observation_phrases=[(r"(?m)^(  )(?P<command>[a-z][^:\n]*?):(?= )", "")],  # the lines of "help"
    instruction_phrases=[(r"(?m)^(\d+\. )(?P<command>.+)$", "")],
    goal_rules=[
        (r"^put (a|some) (clean|hot|cool) (\S+) (in|on) (\S+?)\.?$", r"get \1 \3, make it \2, and leave it \4 the \5."),
        (r"^put (a|some) (\S+) (in|on) (\S+?)\.?$", r"place \1 \2 \3 the \4."),
        (r"^(clean|heat|cool) some (\S+) and put it in (\S+?)\.?$", r"\1 a \2, then leave it in the \3."),
        (r"^put two (\S+) (in|on) (\S+?)\.?$", r"place a pair of \1 \2 the \3."),
        (r"^find two (\S+) and put them (in|on) (\S+?)\.?$", r"locate a pair of \1 and place both \2 the \3."),
        (r"^look at (\S+) under the (\S+?)\.?$", r"examine the \1 in the light of the \2."),
        (r"^examine the (\S+) with the (\S+?)\.?$", r"look at the \1 by the light of the \2."),
    ],
    goal_frame="Your household task: {goal}",
)


def _normalize(command: str) -> str:
    """Lower-case, collapse spaces, and read ALFWorld's classic ``put X in/on Y`` (ETO/AgentBoard
    prompts) as the 0.4.2 engine's ``move X to Y``."""
    text = " ".join(command.lower().split())
    match = _PUT.match(text)
    return f"move {match.group(1)} to {match.group(2)}" if match else text


def _split_games(root: Path) -> dict[str, list[str]]:
    """Game dirs (relative to ``root``) of a json_2.1.1-style tree: test = valid_unseen, train = train."""
    games = sorted(p.parent.relative_to(root).as_posix() for p in root.rglob(GAME_FILE))
    test = [g for g in games if g.split("/")[0] == "valid_unseen"]
    train = [g for g in games if g.split("/")[0] == "train"]
    if not test and not train:  # a flat folder of games: all of them in both splits
        return {"test": games, "train": games}
    return {"test": test, "train": train}


class ALFWorldEnv(TextEnv):
    """Interact with a household to solve a task (ALFWorld, TextWorld's PDDL engine).

    ## Description
    ALFWorld's text games: the agent is in a room with receptacles (cabinets, countertops, a fridge,
    a sinkbasin, ...) holding objects, and must solve one of six task types: pick and place, pick two
    and place, look at an object under a lamp, and pick-clean/heat/cool-then-place. The game runs on
    ALFWorld's ``alfred.pddl`` domain and ``alfred.twl2`` text grammar in TextWorld's PDDL runtime
    (fast-downward state). Scenes are generated from the floor plans ``alfworld`` ships (see
    ``scenes.py``); the test split (134 games, ALFWorld's ``valid_unseen`` task-type counts) uses the
    four ``valid_unseen`` floor plans that training never sees. ``data_path`` plays the official games
    (a ``json_2.1.1`` tree of ``game.tw-pddl`` files) instead.

    ## Action Space
    The engine's admissible commands: ``go to {recep}``, ``open/close {recep}``, ``take {obj} from
    {recep}``, ``move {obj} to {recep}``, ``clean/heat/cool {obj} with {recep}``, ``use {lamp}``,
    ``examine {something}``, ``inventory``, ``look``, ``help``. Matching ignores case and extra spaces;
    anything else answers "Nothing happens." with ``action_valid`` False and never reaches the engine.

    ## Observation Space
    ALFWorld's text: "You are in the middle of a room. Looking quickly around you, you see a cabinet 1,
    ... \\n\\nYour task is to: put a clean mug in coffeemachine." then the engine's feedback ("You arrive
    at cabinet 1. The cabinet 1 is closed.").

    ## Rewards
    The increase of the progress rate: subgoals (target found, picked up, cleaned/heated/cooled, placed,
    lamp reached) over ``n + 1``; 1.0 when the game is won.

    ## Starting State / Episode End
    The agent starts in the middle of the room. Terminates when the game is won; truncated by
    ``max_episode_steps`` (30).

    ## Info
    The common keys plus ``task_type``.

    ## Arguments
    ``split`` ("train" or "test"), ``data_path`` (official games instead of generated ones),
    ``num_train`` (generated train games, default ALFWorld's 3553), ``perturbation`` (0..4: AgentRM's renamed
    grammar, e.g. ``move to {recep}``, ``from {recep} take {obj}``, and reworded goals; see
    :mod:`agentrm_gym.perturbation`).

    ## Version History
    v0: initial version.
    """

    task_name = "ALFWorld"
    invalid_action_message = INVALID
    command_vocabulary = ("look", "inventory", "go to countertop 1", "open fridge 1", "take mug 1 from countertop 1")

    def __init__(self, split: str = "train", render_mode: str | None = None, data_path: str | Path | None = None,
                 num_train: int | None = None, perturbation: int = 0):
        require_extra("ALFWorld")
        super().__init__(split=split, render_mode=render_mode, perturbation=perturbation)
        from agentrm_gym.envs.alfworld.scenes import NUM_TRAIN

        self.num_train = NUM_TRAIN if num_train is None else int(num_train)
        if self.num_train < 1:
            raise ValueError(f"num_train must be >= 1, got {num_train}")
        self.data_path = Path(data_path).expanduser() if data_path is not None else None
        if self.data_path is not None and not self.data_path.is_dir():
            raise FileNotFoundError(f"ALFWorld data_path {self.data_path} is not a folder of game.tw-pddl files")
        self._official: dict[str, list[str]] | None = None
        self._engine: Any = None
        self._tracker: Any = None
        self._spec: Any = None
        self._types: dict[str, str] = {}
        self._task_type = ""

    # -------------------------------------------------------------- tasks
    def task_ids(self, split: str = "test") -> list[str]:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if self.data_path is not None:
            if self._official is None:
                self._official = _split_games(self.data_path)
            return list(self._official[split])
        from agentrm_gym.envs.alfworld.scenes import TEST_TYPE_COUNTS

        if split == "test":
            return [f"test-{i:03d}" for i in range(sum(TEST_TYPE_COUNTS.values()))]
        return [f"train-{i:04d}" for i in range(self.num_train)]

    def _game_path(self, task_id: str) -> Path:
        if self.data_path is not None:
            ids = set(self.task_ids("test")) | set(self.task_ids("train"))
            if task_id not in ids:
                raise UnknownTask(f"ALFWorld: {task_id!r} is not a game folder under {self.data_path}")
            return self.data_path / task_id / GAME_FILE
        from agentrm_gym.envs.alfworld import games

        split, _, index = task_id.partition("-")
        if split not in ("train", "test") or not index.isdigit() or task_id not in self._id_set(split):
            raise UnknownTask(f"ALFWorld: {task_id!r}; ids look like 'test-007' or 'train-0042'")
        return games.game_file(split, int(index))

    def _id_set(self, split: str) -> set[str]:
        cache = self.__dict__.setdefault("_ids_cache", {})
        if split not in cache:
            cache[split] = set(self.task_ids(split))
        return cache[split]

    def _task_spec(self, path: Path, data: dict[str, Any]) -> Any:
        from agentrm_gym.envs.alfworld.subgoals import TaskSpec

        scene = data.get("agentrm_scene")
        if scene:
            return TaskSpec(scene["task_type"], scene["obj"].lower(),
                            (scene["recep"] or "").lower() or None, (scene["toggle"] or "").lower() or None)
        for part in reversed(path.parts):
            m = _GAME_DIR.fullmatch(part)
            if m:
                kind = m["type"]
                obj, recep = m["obj"].lower(), m["recep"].lower()
                if kind == "look_at_obj_in_light":
                    return TaskSpec(kind, obj, None, recep)
                return TaskSpec(kind, obj, recep, None)
        raise UnknownTask(f"ALFWorld: cannot tell the task type of {path}; game folders are named "
                          "'<task_type>-<Object>-<MRecep>-<Recep>-<scene>'")

    def _load_task(self, task_id: str) -> tuple[str, str]:
        from agentrm_gym.envs.alfworld.engine import AlfredEngine
        from agentrm_gym.envs.alfworld.subgoals import SubgoalTracker

        path = self._game_path(task_id)
        if self._engine is None:
            self._engine = AlfredEngine()
        if self._engine.game_path != path:
            data = json.loads(path.read_text())
            self._spec = self._task_spec(path, data)
            self._engine.load(path)
            self._types = {}
            for name, args in self._engine.facts():
                if name in ("objecttype", "receptacletype"):
                    self._types[args[0]] = args[1].removesuffix("type")
        intro = self._engine.reset()
        self._task_type = self._spec.task_type
        self._tracker = SubgoalTracker(self._spec, self._types)
        self._tracker.update(intro, self._engine.facts())
        goal = intro.rsplit("Your task is to: ", 1)[-1].strip() if "Your task is to: " in intro else ""
        return goal or self._engine.task_text, intro

    # -------------------------------------------------------------- dynamics
    def _step(self, action: str) -> StepOutcome:
        wanted = _normalize(action)
        command = None
        if wanted and len(wanted) < 200:
            for cmd in self._engine.admissible:
                if _normalize(cmd) == wanted:
                    command = cmd
                    break
        if command is None:
            return StepOutcome(INVALID, valid=False)
        feedback = self._engine.step(command)
        if feedback is None:
            return StepOutcome(INVALID, valid=False)
        self._tracker.update(feedback, self._engine.facts())
        return StepOutcome(feedback)

    def _progress(self) -> float:
        return self._tracker.progress(self._engine.won)

    def _success(self) -> bool:
        return self._engine.won

    def admissible_actions(self) -> list[str] | None:
        if self._engine is None or self._task_id is None:
            return None
        return list(self._engine.admissible)

    def expert_action(self) -> str | None:
        from agentrm_gym.envs.alfworld.oracle import expert_command

        if self._engine is None or self._terminated or self._task_id is None:
            return None
        command = expert_command(self._spec, self._engine.facts(), self._types, self._engine.names)
        return command if command in self._engine.admissible else None

    @property
    def task_type(self) -> str:
        """The ALFWorld task type of the current game."""
        return self._task_type

    def _info(self) -> dict[str, Any]:
        info = super()._info()
        info["task_type"] = self._task_type
        return info

    def perturbation_table(self) -> Perturbation:
        return PERTURBATION

    # -------------------------------------------------------------- snapshots
    def _get_state(self) -> Any:
        return self._engine.get_state(), tuple(sorted(self._tracker.copy_state()))

    def _set_state(self, state: Any) -> None:
        engine_state, reached = state
        self._engine.set_state(engine_state)
        self._tracker.set_state(reached)

    def instruction(self) -> str:
        return (
            "Interact with a household to solve a task. Imagine you are an intelligent agent in a household "
            "environment and your target is to perform actions to complete the task goal. At the beginning of "
            "your interactions, you will be given the detailed description of the current environment and "
            "your goal to accomplish.\n"
            "The available actions are:\n"
            "1. go to {recep}\n2. take {obj} from {recep}\n3. move {obj} to {recep}\n4. open {recep}\n"
            "5. close {recep}\n6. use {obj}\n7. clean {obj} with {recep}\n8. heat {obj} with {recep}\n"
            "9. cool {obj} with {recep}\n10. examine {something}\n11. inventory\n12. look\n"
            "where {obj} and {recep} correspond to objects and receptacles. After each turn the environment "
            "gives feedback; an action that is not available answers \"Nothing happens.\". "
            "Say \"check valid actions\" to list the available actions."
        )
