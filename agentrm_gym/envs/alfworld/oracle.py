"""The ALFWorld oracle: the next command toward the goal, planned from the game's current facts.

It knows where every object is (the engine's facts), so it walks straight to a target object, opens
its receptacle if needed, takes it, uses the sink / microwave / fridge / lamp, and puts it in a target
receptacle. It re-plans from the state at every call, so it recovers after an agent's detour (e.g. it
first puts down a wrong object it finds in the hands).
"""

from __future__ import annotations

from agentrm_gym.envs.alfworld.subgoals import STATE_OF, Fact, TaskSpec

APPLIANCE = {
    "pick_clean_then_place_in_recep": ("sinkbasin", "clean"),
    "pick_heat_then_place_in_recep": ("microwave", "heat"),
    "pick_cool_then_place_in_recep": ("fridge", "cool"),
}


class _World:
    def __init__(self, facts: list[Fact], types: dict[str, str], names: dict[str, str]):
        self.types, self.names = types, names
        self.where: dict[str, str] = {}
        self.loc_of: dict[str, str] = {}
        self.opened: set[str] = set()
        self.openable: set[str] = set()
        self.held: str | None = None
        self.here: str | None = None
        self.props: set[tuple[str, str]] = set()
        self.can_contain: set[tuple[str, str]] = set()
        for name, args in facts:
            if name == "inreceptacle":
                self.where[args[0]] = args[1]
            elif name == "receptacleatlocation":
                self.loc_of[args[0]] = args[1]
            elif name == "opened":
                self.opened.add(args[0])
            elif name == "openable":
                self.openable.add(args[0])
            elif name == "holds":
                self.held = args[1]
            elif name == "atlocation":
                self.here = args[1]
            elif name == "cancontain":
                self.can_contain.add((args[0].removesuffix("type"), args[1].removesuffix("type")))
            elif len(args) == 1:
                self.props.add((name, args[0]))
        self.receptacles = sorted(self.loc_of, key=lambda r: names.get(r, r))

    def name(self, entity: str) -> str:
        return self.names.get(entity, entity)

    def at(self, recep: str) -> bool:
        return self.loc_of.get(recep) == self.here

    def reach(self, recep: str) -> str | None:
        """Go to ``recep`` and open it; ``None`` once it is reachable and open."""
        if not self.at(recep):
            return f"go to {self.name(recep)}"
        if recep in self.openable and recep not in self.opened:
            return f"open {self.name(recep)}"
        return None

    def of_type(self, otype: str) -> list[str]:
        return sorted((e for e, t in self.types.items() if t == otype), key=self.name)


def _put_down(w: _World, obj: str, target: str | None) -> str:
    """Put the held ``obj`` into ``target`` (or any receptacle that can hold it)."""
    otype = w.types.get(obj, "")
    options = [target] if target else []
    options += [r for r in w.receptacles if (w.types.get(r, ""), otype) in w.can_contain]
    here = [r for r in options if w.at(r)]
    recep = target or (here[0] if here else options[0] if options else None)
    if recep is None:
        return "look"
    step = w.reach(recep)
    return step or f"move {w.name(obj)} to {w.name(recep)}"


def _fetch(w: _World, candidates: list[str]) -> str | None:
    """Go to the nearest candidate object (one here first) and take it."""
    reachable = [o for o in candidates if o in w.where]
    if not reachable:
        return None
    reachable.sort(key=lambda o: (not w.at(w.where[o]), w.name(w.where[o]), w.name(o)))
    obj = reachable[0]
    recep = w.where[obj]
    return w.reach(recep) or f"take {w.name(obj)} from {w.name(recep)}"


def expert_command(task: TaskSpec, facts: list[Fact], types: dict[str, str], names: dict[str, str]) -> str | None:
    """The oracle's next command for ``task`` in the state described by ``facts``."""
    w = _World(facts, types, names)
    objs = w.of_type(task.obj)
    if task.task_type == "look_at_obj_in_light":
        if w.held is not None and w.types.get(w.held) != task.obj:
            return _put_down(w, w.held, None)
        if w.held is None:
            return _fetch(w, objs)
        lamps = [lamp for lamp in w.of_type(task.toggle or "") if lamp in w.where]
        if not lamps:
            return None
        lamp = lamps[0]
        if not w.at(w.where[lamp]):
            return f"go to {w.name(w.where[lamp])}"
        return f"use {w.name(lamp)}"

    targets = w.of_type(task.recep or "")
    if not targets:
        return None
    placed = [o for o in objs if w.where.get(o) in targets]
    target = w.where[placed[0]] if placed and task.task_type == "pick_two_obj_and_place" else targets[0]
    if w.held is not None and w.types.get(w.held) != task.obj:
        return _put_down(w, w.held, None)
    if w.held is None:
        if task.task_type in STATE_OF:
            pred = STATE_OF[task.task_type][0]
            # an object already in the required state is best; else any not yet in a target receptacle
            ready = [o for o in objs if (pred, o) in w.props and w.where.get(o) not in targets]
            return _fetch(w, ready) or _fetch(w, [o for o in objs if w.where.get(o) not in targets])
        return _fetch(w, [o for o in objs if w.where.get(o) not in targets])
    obj = w.held
    if task.task_type in APPLIANCE:
        pred = STATE_OF[task.task_type][0]
        if (pred, obj) not in w.props:
            appliance_type, verb = APPLIANCE[task.task_type]
            appliances = w.of_type(appliance_type)
            if not appliances:
                return None
            if not w.at(appliances[0]):
                return f"go to {w.name(appliances[0])}"
            return f"{verb} {w.name(obj)} with {w.name(appliances[0])}"
    return _put_down(w, obj, target)
