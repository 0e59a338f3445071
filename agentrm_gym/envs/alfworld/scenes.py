"""Scene generation for ALFWorld: receptacles, objects and a task on one of ALFRED's floor plans.

The ``alfworld`` wheel ships, for each of ALFRED's 120 floor plans, the object types present
(``FloorPlan<n>-objects.json``) and the static receptacles with their interaction points
(``FloorPlan<n>-openable.json``); ``alfworld.gen.constants`` says which object types each receptacle type
can hold and which objects can be cleaned, heated, cooled or toggled. The official game files are not
distributable offline, so a scene is generated from those: every static receptacle of the floor plan, each
placeable object type in one to three instances on valid receptacles, and one of ALFWorld's six task
types with a target object (and receptacle, or lamp) that the scene can satisfy.

The test split lives on ALFWorld's four ``valid_unseen`` floor plans (10, 219, 308, 424), which the train
split never uses, with ALFWorld's ``valid_unseen`` task-type counts (134 games in all).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

#: ALFWorld's six task types (the names of ``alfworld``'s ``TASK_TYPES`` and of the game folders).
TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)

#: Room types where ALFRED generates each task type (``alfworld.gen.constants.GOALS_VALID``).
VALID_ROOMS = {
    "pick_and_place_simple": {"Kitchen", "LivingRoom", "Bathroom", "Bedroom"},
    "pick_two_obj_and_place": {"Kitchen", "LivingRoom", "Bathroom", "Bedroom"},
    "look_at_obj_in_light": {"LivingRoom", "Bedroom"},
    "pick_clean_then_place_in_recep": {"Kitchen", "Bathroom"},
    "pick_heat_then_place_in_recep": {"Kitchen"},
    "pick_cool_then_place_in_recep": {"Kitchen"},
}

#: ALFWorld's ``valid_unseen`` floor plans: the test split, never used for training.
TEST_FLOOR_PLANS = (10, 219, 308, 424)
#: ALFWorld's ``valid_unseen`` games per task type (134 in all).
TEST_TYPE_COUNTS = {
    "pick_and_place_simple": 24,
    "look_at_obj_in_light": 18,
    "pick_clean_then_place_in_recep": 31,
    "pick_heat_then_place_in_recep": 23,
    "pick_cool_then_place_in_recep": 21,
    "pick_two_obj_and_place": 17,
}
#: ALFWorld's training set size.
NUM_TRAIN = 3553

LAMP_TYPES = ("DeskLamp", "FloorLamp")
#: Furniture a lamp stands on (the lamps are in no receptacle's list in ``constants``).
LAMP_HOLDERS = ("SideTable", "Desk", "Dresser", "DiningTable", "CoffeeTable", "Shelf", "TVStand", "ArmChair", "Sofa",
                "Bed", "Cabinet", "Drawer", "CounterTop")
#: Appliances a state-change task must not use as its target receptacle.
APPLIANCE_OF = {
    "pick_clean_then_place_in_recep": "SinkBasin",
    "pick_heat_then_place_in_recep": "Microwave",
    "pick_cool_then_place_in_recep": "Fridge",
}
ACTION_PROPERTY = {
    "pick_clean_then_place_in_recep": "Cleanable",
    "pick_heat_then_place_in_recep": "Heatable",
    "pick_cool_then_place_in_recep": "Coolable",
}
#: Distractor object types per scene (besides the target): keeps PDDL grounding, hence load time, small.
MAX_DISTRACTOR_TYPES = 8
#: Extra copies of receptacle types that the openable lists leave out (stoves have several burners).
DEFAULT_COUNTS = {"StoveBurner": 4}


def room_type(floor_plan: int) -> str:
    """ALFRED's room type of a floor plan number."""
    if floor_plan <= 30:
        return "Kitchen"
    return {2: "LivingRoom", 3: "Bedroom", 4: "Bathroom"}[floor_plan // 100]


@dataclass
class Receptacle:
    """A static receptacle of a scene (``ident`` is its PDDL name, ``rtype`` its ALFRED class)."""

    ident: str
    rtype: str
    openable: bool


@dataclass
class Item:
    """A movable object of a scene and the receptacle that holds it."""

    ident: str
    otype: str
    receptacle: str
    pickupable: bool = True


@dataclass
class Scene:
    """A generated ALFWorld game: the world and its task.

    Attributes:
        task_type: one of :data:`TASK_TYPES`.
        floor_plan: the ALFRED floor plan the receptacles and object types come from.
        obj: the target object type (ALFRED class, e.g. ``"Mug"``).
        recep: the target receptacle type (``None`` for ``look_at_obj_in_light``).
        toggle: the lamp type of ``look_at_obj_in_light`` (``None`` otherwise).
        template: which of the task type's two phrasings the goal uses (0 or 1).
    """

    task_type: str
    floor_plan: int
    obj: str
    recep: str | None
    toggle: str | None
    template: int
    receptacles: list[Receptacle] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scene:
        data = dict(data)
        data["receptacles"] = [Receptacle(**r) for r in data["receptacles"]]
        data["items"] = [Item(**i) for i in data["items"]]
        return cls(**data)


@lru_cache(maxsize=1)
def _constants() -> Any:
    import alfworld.gen.constants as constants  # lazy: the [alfworld] extra

    return constants


@lru_cache(maxsize=1)
def _layout_dir() -> Path:
    import alfworld

    return Path(alfworld.__file__).parent / "gen" / "layouts"


def floor_plans() -> list[int]:
    """The floor plans whose layouts the installed ``alfworld`` ships."""
    return sorted(int(p.name.split("-")[0].removeprefix("FloorPlan")) for p in _layout_dir().glob("FloorPlan*-objects.json"))


def train_floor_plans() -> list[int]:
    """Every shipped floor plan except the test ones."""
    return [n for n in floor_plans() if n not in TEST_FLOOR_PLANS]


@lru_cache(maxsize=256)
def _layout(floor_plan: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(object types, receptacle instance ids) of a floor plan."""
    layouts = _layout_dir()
    objects = json.loads((layouts / f"FloorPlan{floor_plan}-objects.json").read_text())
    openable = json.loads((layouts / f"FloorPlan{floor_plan}-openable.json").read_text())
    return tuple(sorted(set(objects))), tuple(sorted(openable))


def _receptacle_type(instance_id: str) -> str:
    parts = instance_id.split("|")
    return parts[-1] if parts[-1].endswith("Basin") else parts[0]


def _receptacle_ident(rtype: str, k: int) -> str:
    # The demangler names "Sink|..|SinkBasin" "sinkbasin N", as in ALFWorld's own games.
    if rtype == "SinkBasin":
        return f"Sink_bar_{k}_bar_SinkBasin"
    if rtype == "BathtubBasin":
        return f"Bathtub_bar_{k}_bar_BathtubBasin"
    return f"{rtype}_bar_{k}"


def scene_receptacles(floor_plan: int) -> list[Receptacle]:
    """The static receptacles of a floor plan: its interaction-point list plus types only listed as objects."""
    c = _constants()
    static = set(c.RECEPTACLES) - set(c.MOVABLE_RECEPTACLES)
    object_types, instances = _layout(floor_plan)
    counts: dict[str, int] = {}
    for inst in instances:
        rtype = _receptacle_type(inst)
        if rtype in static:
            counts[rtype] = counts.get(rtype, 0) + 1
    for otype in object_types:
        if otype in static and otype not in counts:
            counts[otype] = DEFAULT_COUNTS.get(otype, 1)
    out = []
    for rtype in sorted(counts):
        for k in range(1, counts[rtype] + 1):
            out.append(Receptacle(_receptacle_ident(rtype, k), rtype, rtype in c.OPENABLE_CLASS_SET))
    return out


def _holders(otype: str, rtypes: set[str]) -> list[str]:
    c = _constants()
    return sorted(r for r in rtypes if otype in c.VAL_RECEPTACLE_OBJECTS.get(r, ()))


def placeable_types(floor_plan: int, rtypes: set[str]) -> list[str]:
    """Movable object types of a floor plan that some receptacle of the scene can hold."""
    c = _constants()
    static = set(c.RECEPTACLES) - set(c.MOVABLE_RECEPTACLES)
    object_types, _ = _layout(floor_plan)
    return [t for t in object_types if t in c.OBJECTS_SET and t not in static and t not in LAMP_TYPES
            and _holders(t, rtypes)]


def _task_options(task_type: str, floor_plan: int) -> list[tuple[str, str | None, str | None]]:
    """Every (object, receptacle, lamp) target triple a floor plan allows for a task type."""
    c = _constants()
    if room_type(floor_plan) not in VALID_ROOMS[task_type]:
        return []
    receptacles = scene_receptacles(floor_plan)
    rtypes = {r.rtype for r in receptacles}
    objects = placeable_types(floor_plan, rtypes)
    object_types, _ = _layout(floor_plan)
    if task_type == "look_at_obj_in_light":
        lamps = [lamp for lamp in LAMP_TYPES if lamp in object_types]
        if not lamps or not any(h in rtypes for h in LAMP_HOLDERS):
            return []
        return [(o, None, lamp) for lamp in lamps for o in objects if o in c.OBJECTS]
    options = []
    appliance = APPLIANCE_OF.get(task_type)
    if appliance is not None and appliance not in rtypes:
        return []
    prop = ACTION_PROPERTY.get(task_type)
    for o in objects:
        if prop is not None and o not in c.VAL_ACTION_OBJECTS[prop]:
            continue
        holders = _holders(o, rtypes)
        for r in holders:
            if r == appliance:
                continue
            # the target objects must start somewhere other than the target receptacle type
            if not [h for h in holders if h != r]:
                continue
            options.append((o, r, None))
    return options


def generate_scene(task_type: str, floor_plans_pool: list[int], rng: np.random.Generator) -> Scene:
    """A random solvable scene of ``task_type`` on one of ``floor_plans_pool``."""
    if task_type not in TASK_TYPES:
        raise ValueError(f"unknown ALFWorld task type {task_type!r}; known: {', '.join(TASK_TYPES)}")
    order = [int(i) for i in rng.permutation(len(floor_plans_pool))]
    for i in order:
        plan = floor_plans_pool[i]
        options = _task_options(task_type, plan)
        if options:
            break
    else:
        raise ValueError(f"no floor plan of {floor_plans_pool} supports {task_type}")
    obj, recep, toggle = options[int(rng.integers(len(options)))]
    receptacles = scene_receptacles(plan)
    rtypes = {r.rtype for r in receptacles}
    by_type: dict[str, list[Receptacle]] = {}
    for r in receptacles:
        by_type.setdefault(r.rtype, []).append(r)
    items: list[Item] = []
    others = [t for t in placeable_types(plan, rtypes) if t != obj]
    keep = {others[int(i)] for i in rng.permutation(len(others))[:MAX_DISTRACTOR_TYPES]}
    for otype in [t for t in placeable_types(plan, rtypes) if t == obj or t in keep]:
        holders = _holders(otype, rtypes)
        if otype == obj:
            holders = [h for h in holders if h != recep] or holders
            low = 2 if task_type == "pick_two_obj_and_place" else 1
            n = int(rng.integers(low, 4))
        else:
            n = int(rng.integers(1, 3))
        for k in range(1, n + 1):
            rtype = holders[int(rng.integers(len(holders)))]
            pool = by_type[rtype]
            where = pool[int(rng.integers(len(pool)))]
            items.append(Item(f"{otype}_bar_{k}", otype, where.ident))
    if toggle is not None:
        holders = [h for h in LAMP_HOLDERS if h in rtypes]
        rtype = holders[int(rng.integers(len(holders)))]
        pool = by_type[rtype]
        where = pool[int(rng.integers(len(pool)))]
        items.append(Item(f"{toggle}_bar_1", toggle, where.ident, pickupable=False))
    return Scene(task_type, plan, obj, recep, toggle, int(rng.integers(2)), receptacles, items)


def test_task_types() -> list[str]:
    """The task type of each test index, in ALFWorld's ``valid_unseen`` proportions (interleaved)."""
    out: list[str] = []
    remaining = dict(TEST_TYPE_COUNTS)
    while any(remaining.values()):
        for t in TASK_TYPES:
            if remaining[t]:
                out.append(t)
                remaining[t] -= 1
    return out


def scene_for(split: str, index: int) -> Scene:
    """The deterministic scene of a split's ``index``-th game."""
    if split == "test":
        types = test_task_types()
        if not 0 <= index < len(types):
            raise IndexError(index)
        task_type = types[index]
        pool = list(TEST_FLOOR_PLANS)
        seed = [2502, 1, index]
    elif split == "train":
        if index < 0:
            raise IndexError(index)
        task_type = TASK_TYPES[index % len(TASK_TYPES)]
        pool = train_floor_plans()
        seed = [2502, 0, index]
    else:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return generate_scene(task_type, pool, np.random.default_rng(seed))


def iter_scenes(split: str, n: int) -> Iterator[Scene]:
    """The first ``n`` scenes of a split."""
    for i in range(n):
        yield scene_for(split, i)
