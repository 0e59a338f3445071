"""The ScienceWorld env: the ``scienceworld`` simulator with AgentBoard's settings as a text env.

:class:`ScienceWorldEnv` loads a (task, variation), steps commands (sending to the JVM only admissible
or plausible ones), lists valid actions (cached per state) and snapshots by reload and replay, keeping up
to ``simulators`` JVMs so that a restore continues the one that already holds a prefix of the state. The JVM
lives in ``jvm``, the task table in ``tasks``, command and observation text in ``text`` and the gold
paths and expert in ``gold``.
"""

from __future__ import annotations

import re
import shutil
from collections import OrderedDict
from typing import Any

from agentrm_gym.core import MissingExtra, StepOutcome, TextEnv, UnknownTask
from agentrm_gym.envs.sciworld.gold import ScienceWorldGold
from agentrm_gym.envs.sciworld.jvm import ScienceWorldSimulator, valid_action_combinations
from agentrm_gym.envs.sciworld.tasks import (
    SIMPLIFICATIONS,
    TASK_VARIATIONS,
    TEST_EPISODES,
    format_task_id,
    simplifications_for,
)
from agentrm_gym.envs.sciworld.text import NO_MATCH, canonical_observation, normalize_command, send_command
from agentrm_gym.perturbation import Perturbation

#: Commands that would restart the episode behind the env's back.
BLOCKED_COMMANDS = ("reset task",)
MAX_COMMAND_LENGTH = 300
#: States whose valid-action lists an env keeps (least recently used dropped first).
ADMISSIBLE_CACHE_SIZE = 1024
#: JVMs an env keeps for restores by default: Best-of-5 in lockstep and a 2x3 beam cycle through <= 6 states.
DEFAULT_SIMULATORS = 6
#: First words of ScienceWorld's action templates (``get_possible_actions()``, plus connect/disconnect and
#: ``drop``, an alias of ``put down`` that gold paths use but the valid-action list never shows).
ACTION_VERBS = frozenset({
    "activate", "close", "deactivate", "drop", "dunk", "eat", "flush", "focus", "go", "inventory", "look", "mix",
    "move", "open", "pick", "pour", "put", "read", "task", "use", "wait", "wait1", "connect", "disconnect",
    "examine", "teleport",
})
#: ``perturbation >= 1``: ScienceWorld's templates renamed (the simulator still reads the originals).
PERTURBATION = Perturbation(
    [("look around", "survey the room"), ("look at {obj}", "inspect {obj}"), ("look in {obj}", "peer into {obj}"),
     ("go to {loc}", "walk to {loc}"), ("teleport to {loc}", "warp to {loc}"), ("pick up {obj}", "grab {obj}"),
     ("put down {obj}", "release {obj}"), ("move {obj} to {dest}", "transfer {obj} to {dest}"),
     ("pour {obj} into {dest}", "empty {obj} into {dest}"), ("dunk {obj} into {dest}", "submerge {obj} into {dest}"),
     ("mix {obj}", "stir {obj}"), ("focus on {obj}", "concentrate on {obj}"), ("open {obj}", "pull open {obj}"),
     ("close {obj}", "push shut {obj}"), ("activate {obj}", "switch on {obj}"), ("deactivate {obj}", "switch off {obj}"),
     ("use {obj} on {target}", "apply {obj} onto {target}"), ("use {obj}", "apply {obj}"),
     ("connect {a} to {b}", "wire {a} to {b}"), ("disconnect {obj}", "unwire {obj}"), ("read {obj}", "peruse {obj}"),
     ("eat {obj}", "consume {obj}"), ("flush {obj}", "trigger the flush of {obj}"), ("wait1", "pause briefly"),
     ("wait", "pause"), ("task", "show task"), ("inventory", "check inventory")],
    retired=["drop {obj}", "pour {obj} in {dest}", "dunk {obj} in {dest}"],
    instruction_phrases=[(r"use OBJ \[on OBJ\]", "apply OBJ [onto OBJ]"),
                         (r"(?m)^(?P<command>[a-z][^:\n]*?)(?=: )", "")],
    goal_rules=[(r"^Your task is to ", "Your assignment is to "), (r"\bFirst, focus on\b", "Begin by focusing on"),
                (r"\bWhen you are done, focus on\b", "Once you have finished, focus on"), (r"\bThen, ", "After that, ")],
    goal_frame="Assignment: {goal}",
)


class ScienceWorldEnv(ScienceWorldGold, TextEnv):
    """You are a helpful assistant to do some scientific experiments in an environment.

    ## Description
    ScienceWorld (Wang et al., 2022) through the ``scienceworld`` package with AgentBoard's settings:
    simplifications selfWateringFlowerPots, openContainers, openDoors and noElectricalAction (dropped for
    the electrical tasks, which need it), 30 steps. A task id is ``"<task>@<variation>"``, e.g.
    ``"chemistry-mix@24"``. The test split is 90 episodes from the simulator's test variations whose
    gold path fits in 30 steps (:data:`TEST_EPISODES`); the train split is every train variation of
    every task (1,800+ episodes).

    ## Action Space
    ScienceWorld's commands: ``look around``, ``inventory``, ``task``, ``open OBJ``, ``close OBJ``,
    ``activate OBJ``, ``deactivate OBJ``, ``go to LOC``, ``pick up OBJ``, ``put down OBJ``,
    ``move OBJ to OBJ``, ``pour OBJ in OBJ``, ``dunk OBJ in OBJ``, ``mix OBJ``, ``focus on OBJ``,
    ``use OBJ on OBJ``, ``look at OBJ``, ``look in OBJ``, ``read OBJ``, ``eat OBJ``, ``flush OBJ``,
    ``wait`` (10 ticks), ``wait1``. ``info["admissible_actions"]`` is the simulator's list of valid
    action-object combinations. A command outside that list is sent to the simulator only when it is
    plain words starting with one of ScienceWorld's action verbs; it is valid iff the simulator parses it (anything else, and any
    garbage, is answered "No known action matches that input." with ``action_valid=False`` and never
    reaches the JVM). An ambiguous command is resolved to the simulator's first reading, as AgentBoard
    does. ``reset task`` is refused.

    ## Observation Space
    The simulator's text, e.g. "This room is called the hallway. In it, you see: ...". The first
    observation is the room description (``look around``, taken as a free action).

    ## Rewards
    The increase of the progress rate, which is the simulator's score / 100 (negative scores count
    as 0), so an episode's rewards sum to its best score / 100 minus its score at reset (some tasks
    count a subgoal met from the start: find-animal starts at 0.08).

    ## Starting State
    The task's variation as ``load(task, variation, simplifications)`` builds it.

    ## Episode End
    Terminates on success (score 100) or when the simulator ends the task otherwise (e.g. focusing on
    the wrong object: negative score); truncated at 30 steps by ``max_episode_steps``.

    ## Info keys
    The TextEnv keys; ``expert_action()`` follows the simulator's gold path while the agent has taken
    exactly its prefix and returns ``None`` after any deviation (the gold path is not replanned).

    ## Arguments
    ``split`` ("train" or "test"), ``simplifications`` (tuple of names), ``timeout`` (seconds a JVM call
    may take; a hung call raises :class:`SimulatorTimeout`), ``simulators`` (JVMs kept for restores,
    default 6, each about 170 MB: a restore continues a JVM that holds a prefix of the target state, the
    longest such prefix, so search that cycles through N states (Best-of-N in lockstep, beam) replays
    one command per step instead of reloading and replaying the whole history; ``1``: reload and replay
    in one JVM). The extra JVMs start only when a restore needs one. ``admissible_in_info`` (default
    ``True``): ``False`` leaves ``info["admissible_actions"]`` ``None`` and lists valid actions only when
    ``admissible_actions()`` (or a garbage command's validity check) asks, for agents that do not read
    the list: listing them is about 5/6 of a step's JVM time. ``perturbation`` (0..4: renamed templates, e.g.
    ``walk to LOC``, ``concentrate on OBJ``, and reworded task descriptions; see :mod:`agentrm_gym.perturbation`).

    ## Version History
    v0: initial version (scienceworld 1.2.3).
    """

    task_name = "ScienceWorld"
    invalid_action_message = NO_MATCH
    command_vocabulary = ("look around", "inventory", "task", "wait1")

    def __init__(
        self,
        split: str = "train",
        render_mode: str | None = None,
        simplifications: tuple[str, ...] | list[str] = SIMPLIFICATIONS,
        timeout: float = 60.0,
        simulators: int = DEFAULT_SIMULATORS,
        admissible_in_info: bool = True,
        perturbation: int = 0,
    ):
        super().__init__(split=split, render_mode=render_mode, perturbation=perturbation)
        from agentrm_gym.registry import require_extra

        require_extra("ScienceWorld")
        if shutil.which("java") is None:
            raise MissingExtra(
                "ScienceWorld needs a Java runtime (11+) on PATH: e.g. `apt-get install openjdk-17-jre-headless` "
                "(Debian/Ubuntu) or `conda install openjdk=17`"
            )
        unknown = set(simplifications) - {*SIMPLIFICATIONS, "teleportAction"}
        if unknown:
            raise ValueError(f"unknown ScienceWorld simplifications {sorted(unknown)}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        if int(simulators) < 1:
            raise ValueError(f"simulators must be >= 1, got {simulators}")
        self.simplifications = tuple(simplifications)
        self.simulators = int(simulators)
        self.admissible_in_info = bool(admissible_in_info)
        self._listing_deferred = False
        self.simulator = ScienceWorldSimulator(timeout=timeout)
        #: the other JVMs, least recently used first, each with the state it holds
        self._parked: list[dict[str, Any]] = []
        self._task = ""
        self._variation = 0
        self._executed: list[str] = []
        self._score = 0.0
        self._completed = False
        self._admissible: list[str] | None = None
        self._admissible_set: set[str] = set()
        # the simulator is a function of (task, variation, commands sent since load), so the valid-action
        # list (about 0.1-0.3 s of JVM time) is cached per state: resets, restores and replays reuse it
        self._admissible_cache: OrderedDict[tuple[str, int, tuple[str, ...]], list[str]] = OrderedDict()
        self._gold: list[str] | None = None

    # -------------------------------------------------------------- tasks
    def task_ids(self, split: str = "test") -> list[str]:
        if split == "test":
            return [format_task_id(t, v) for t, v in TEST_EPISODES]
        if split == "train":
            return [format_task_id(t, v) for t, (n, _, _) in TASK_VARIATIONS.items() for v in range(n)]
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")

    @staticmethod
    def parse_task_id(task_id: str) -> tuple[str, int]:
        """``"boil@12"`` -> ``("boil", 12)``; raises :class:`UnknownTask` for anything else."""
        task, sep, var = task_id.partition("@")
        if sep and task in TASK_VARIATIONS and var.isdigit():
            _, _, last = TASK_VARIATIONS[task]
            if int(var) <= last:
                return task, int(var)
        raise UnknownTask(
            f"ScienceWorld: {task_id!r}; ids look like 'chemistry-mix@24' (task@variation), tasks: "
            + ", ".join(TASK_VARIATIONS)
        )

    def _simplification_str(self, task: str) -> str:
        return simplifications_for(task, self.simplifications)

    # -------------------------------------------------------------- simulator plumbing
    def _ensure_simulator(self) -> ScienceWorldSimulator:
        if not self.simulator.running:
            self.simulator.start()
        return self.simulator

    def _load(self, task: str, variation: int, gold: bool = False) -> None:
        sim = self._ensure_simulator()
        simp = self._simplification_str(task)
        timeout = max(sim.timeout, 300.0) if gold else None
        sim.call(lambda b: b.load(task, variation, simp, generateGoldPath=gold),
                 f"load {task}@{variation}", timeout=timeout)
        # The JVM recomputes its score only on a command that acts (`task` does not, nor does a load): after a load
        # it still holds the last episode's score, which an episode's first `task` would report as its own (and the
        # progress, a running maximum, keep). Recompute it with the simulator's own first move, as its reset does:
        # the episode starts at the task's own initial score (some count a subgoal met from the start).
        _, score, _ = send_command(sim, "look around")
        self._task, self._variation = task, variation
        self._executed = []
        self._score, self._completed = score, False
        self._admissible = None

    def _send(self, command: str) -> str:
        """Send one command; resolve an ambiguity prompt to its first reading; refresh the score."""
        text, self._score, self._completed = send_command(self.simulator, command)
        self._admissible = None
        return canonical_observation(text)

    def _replay(self, commands: list[str] | tuple[str, ...]) -> None:
        for command in commands:
            self._send(command)
            self._executed.append(command)

    # -------------------------------------------------------------- episode
    def _load_task(self, task_id: str) -> tuple[str, str]:
        task, variation = self.parse_task_id(task_id)
        self._load(task, variation)
        self._gold = None
        goal = self.simulator.query(lambda b: b.server.freeActionTaskDesc(), "task description")
        obs = self.simulator.query(lambda b: b.server.freeActionLook(), "look around")
        goal = goal.strip().removeprefix("Task Description:").strip()
        return goal, canonical_observation(obs)

    def _plausible(self, command: str) -> bool:
        """Whether a non-admissible command may be sent to the JVM: plain words after a known action verb."""
        if not command or len(command) > MAX_COMMAND_LENGTH or not command.isascii() or not command.isprintable():
            return False
        if command in BLOCKED_COMMANDS:
            return False
        words = command.split()
        if not all(re.fullmatch(r"[a-z0-9'-]+", w) for w in words):
            return False
        return words[0] in ACTION_VERBS

    def _step(self, action: str) -> StepOutcome:
        command = normalize_command(action)
        # a plausible command goes to the JVM whether or not it is listed: list only for the others
        if not self._plausible(command):
            self.admissible_actions()
            if command not in self._admissible_set:
                return StepOutcome(NO_MATCH, valid=False)
        text = self._send(command)
        if text.strip() == NO_MATCH:
            return StepOutcome(text, valid=False)
        self._executed.append(command)
        failed = (self._completed or self._score < 0) and self._score < 1.0
        return StepOutcome(text, valid=True, terminal=failed)

    def _progress(self) -> float:
        return max(0.0, self._score)

    def _success(self) -> bool:
        return self._score >= 1.0

    def admissible_actions(self) -> list[str] | None:
        if self._task_id is None or self._listing_deferred:
            return None
        if self._admissible is None:
            key = (self._task, self._variation, tuple(self._executed))
            acts = self._admissible_cache.get(key)
            if acts is None:
                combos = self.simulator.query(valid_action_combinations, "get_valid_action_object_combinations")
                acts = sorted({a for a in map(normalize_command, combos) if a and a not in BLOCKED_COMMANDS})
                self._admissible_cache[key] = acts
                if len(self._admissible_cache) > ADMISSIBLE_CACHE_SIZE:
                    self._admissible_cache.popitem(last=False)
            else:
                self._admissible_cache.move_to_end(key)
            self._admissible = acts
            self._admissible_set = set(acts)
        return list(self._admissible)

    def _info(self) -> dict[str, Any]:
        if self.admissible_in_info:
            return super()._info()
        # the listing is most of a step's JVM time: leave it to admissible_actions(), asked on demand
        self._listing_deferred = True
        try:
            return super()._info()
        finally:
            self._listing_deferred = False

    def perturbation_table(self) -> Perturbation:
        return PERTURBATION

    # -------------------------------------------------------------- snapshots: reload + replay of sent commands
    def _get_state(self) -> Any:
        return {"task": self._task, "variation": self._variation, "executed": tuple(self._executed)}

    def _set_state(self, state: Any) -> None:
        target = list(state["executed"])

        def holds_prefix(sim: ScienceWorldSimulator, task: str, variation: int, executed: list[str]) -> bool:
            return (sim.running and (task, variation) == (state["task"], state["variation"])
                    and executed == target[: len(executed)])

        if not holds_prefix(self.simulator, self._task, self._variation, self._executed):
            fits = [i for i, p in enumerate(self._parked) if holds_prefix(p["sim"], p["task"], p["variation"],
                                                                          p["executed"])]
            if fits:
                self._swap(max(fits, key=lambda i: len(self._parked[i]["executed"])))
            else:
                if self.simulators > 1:
                    fresh = len(self._parked) + 1 < self.simulators
                    self._swap(None if fresh else 0)  # a new JVM, or the least recently used one
                self._load(state["task"], state["variation"])
        self._replay(target[len(self._executed):])

    def _swap(self, index: int | None) -> None:
        """Park the current JVM with its state and continue with parked JVM ``index`` (``None``: a new one)."""
        if self.simulator.running:
            self._parked.append({"sim": self.simulator, "task": self._task, "variation": self._variation,
                                 "executed": list(self._executed), "score": self._score,
                                 "completed": self._completed})  # appended last: ``index`` still holds
        if index is None:
            self.simulator = ScienceWorldSimulator(timeout=self.simulator.timeout)
            self._task, self._variation, self._executed = "", 0, []
            self._score, self._completed = 0.0, False
        else:
            slot = self._parked.pop(index)
            self.simulator = slot["sim"]
            self._task, self._variation, self._executed = slot["task"], slot["variation"], slot["executed"]
            self._score, self._completed = slot["score"], slot["completed"]
        self._admissible = None

    def close(self) -> None:
        """Stop the JVMs (a later ``reset`` starts a new one)."""
        for slot in self._parked:
            slot["sim"].close()
        self._parked = []
        self.simulator.close()
        super().close()

    def instruction(self) -> str:
        return (
            "You are a helpful assistant to do some scientific experiments in an environment.\n"
            "In the environment there are several rooms: kitchen, foundry, workshop, bathroom, outside, "
            "living room, bedroom, greenhouse, art studio, hallway.\n"
            "You should explore the environment and find the items you need to complete the experiment.\n"
            "The available actions are:\n"
            "open OBJ: open a container\nclose OBJ: close a container\nactivate OBJ: activate a device\n"
            "deactivate OBJ: deactivate a device\nconnect OBJ to OBJ: connect electrical components\n"
            "disconnect OBJ: disconnect electrical components\nuse OBJ [on OBJ]: use a device/item\n"
            "look around: describe the current room\nlook at OBJ: describe an object in detail\n"
            "look in OBJ: describe a container's contents\nread OBJ: read a note or book\n"
            "move OBJ to OBJ: move an object to a container\npick up OBJ: move an object to the inventory\n"
            "put down OBJ: drop an inventory item\npour OBJ into OBJ: pour a liquid into a container\n"
            "dunk OBJ into OBJ: dunk a container into a liquid\nmix OBJ: chemically mix a container\n"
            "go to LOC: move to a new location\neat OBJ: eat a food\nflush OBJ: flush a toilet\n"
            "focus on OBJ: signal intent on a task object\nwait: take no action for 10 iterations\n"
            "wait1: take no action for 1 iteration\ntask: describe the current task\n"
            "inventory: list your inventory"
        )
