"""ALFWorld progress: the task-type subgoals AgentBoard annotates, matched against the game state.

AgentBoard marks an ALFWorld episode's progress by the subgoals a solution passes through: the target
object seen, picked up, changed (cleaned, heated, cooled), the lamp reached and used, the object placed.
Here each subgoal is checked against the engine's facts (and, for "seen", the observation text), so
progress is ``matched / (n + 1)`` with the final ``+1`` being the goal itself (1.0 once won).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

Fact = tuple[str, tuple[str, ...]]
STATE_OF = {
    "pick_clean_then_place_in_recep": ("isclean", "clean"),
    "pick_heat_then_place_in_recep": ("ishot", "heat"),
    "pick_cool_then_place_in_recep": ("iscool", "cool"),
}


@dataclass(frozen=True)
class TaskSpec:
    """What a game asks: task type, target object type, receptacle type and lamp type (lower case)."""

    task_type: str
    obj: str
    recep: str | None
    toggle: str | None


def subgoal_names(task: TaskSpec) -> list[str]:
    """The subgoals of a task, in the order a solution reaches them (the goal itself excluded)."""
    names = [f"find a {task.obj}", f"pick up a {task.obj}"]
    if task.task_type in STATE_OF:
        names.append(f"{STATE_OF[task.task_type][1]} the {task.obj}")
    if task.task_type == "pick_two_obj_and_place":
        names += [f"put a {task.obj} in a {task.recep}", f"pick up a second {task.obj}"]
    if task.task_type == "look_at_obj_in_light":
        names.append(f"go to the {task.toggle} with the {task.obj}")
    return names


class SubgoalTracker:
    """Marks subgoals reached (once reached, a subgoal stays reached) from facts and observations."""

    def __init__(self, task: TaskSpec, types: dict[str, str]):
        self.task = task
        self.types = types  # entity id -> lower-case type name ("mug")
        self.names = subgoal_names(task)
        self.reached: set[str] = set()
        self._seen = re.compile(rf"\b(a|an) {re.escape(task.obj)} \d+\b")

    def copy_state(self) -> frozenset[str]:
        return frozenset(self.reached)

    def set_state(self, state: Iterable[str]) -> None:
        self.reached = set(state)

    def update(self, observation: str, facts: list[Fact]) -> None:
        t = self.task
        obj_ids = {e for e, ty in self.types.items() if ty == t.obj}
        held = {args[1] for name, args in facts if name == "holds"} & obj_ids
        in_recep = {(args[0], args[1]) for name, args in facts if name == "inreceptacle"}
        if self._seen.search(observation) or held:
            self.reached.add(self.names[0])
        if held:
            self.reached.add(self.names[1])
        if t.task_type in STATE_OF:
            pred = STATE_OF[t.task_type][0]
            if any(name == pred and args[0] in obj_ids for name, args in facts):
                self.reached.update(self.names[:3])
        if t.task_type == "pick_two_obj_and_place":
            placed = {o for o, r in in_recep if o in obj_ids and self.types.get(r) == t.recep}
            if placed:
                self.reached.update(self.names[:3])
                if held - placed:
                    self.reached.add(self.names[3])
        if t.task_type == "look_at_obj_in_light" and held:
            here = {args[1] for name, args in facts if name == "atlocation"}
            lamps = {o for o, ty in self.types.items() if ty == t.toggle}
            lamp_locs = {args[1] for name, args in facts if name == "objectatlocation" and args[0] in lamps}
            recep_locs = {args[1] for name, args in facts if name == "receptacleatlocation"
                          and any((lamp, args[0]) in in_recep for lamp in lamps)}
            if here & (lamp_locs | recep_locs):
                self.reached.add(self.names[2])

    def progress(self, won: bool) -> float:
        if won:
            return 1.0
        return len(self.reached) / (len(self.names) + 1)
