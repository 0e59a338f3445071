"""PDDL problems and ``.tw-pddl`` game files for generated ALFWorld scenes.

A game file is the JSON that TextWorld's PDDL environment loads: ``{"pddl_domain", "grammar",
"pddl_problem"}``. The domain is ALFWorld's ``alfred.pddl``; the grammar is ALFWorld's ``alfred.twl2``
with the task sentence written into its ``task`` rule (the shipped grammar says "UNKNOWN GOAL" until a
game's goal is filled in) and without TextWorld's welcome banner, so the first observation reads like
ALFWorld's: "You are in the middle of a room. ... \\n\\nYour task is to: put a clean mug in coffeemachine."
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from agentrm_gym.envs.alfworld.scenes import ACTION_PROPERTY, Scene

#: Two phrasings per task type, as ALFWorld's goal templates word them ({obj}/{recep}/{toggle} lower case).
GOAL_TEMPLATES = {
    "pick_and_place_simple": ("put a {obj} in {recep}", "put some {obj} on {recep}"),
    "pick_clean_then_place_in_recep": ("put a clean {obj} in {recep}", "clean some {obj} and put it in {recep}"),
    "pick_heat_then_place_in_recep": ("put a hot {obj} in {recep}", "heat some {obj} and put it in {recep}"),
    "pick_cool_then_place_in_recep": ("put a cool {obj} in {recep}", "cool some {obj} and put it in {recep}"),
    "pick_two_obj_and_place": ("put two {obj} in {recep}", "find two {obj} and put them in {recep}"),
    "look_at_obj_in_light": ("look at {obj} under the {toggle}", "examine the {obj} with the {toggle}"),
}

STATE_PREDICATE = {
    "pick_clean_then_place_in_recep": "isClean",
    "pick_heat_then_place_in_recep": "isHot",
    "pick_cool_then_place_in_recep": "isCool",
}
PROPERTY_PREDICATE = {"Cleanable": "cleanable", "Heatable": "heatable", "Coolable": "coolable"}


def task_description(scene: Scene) -> str:
    """The task sentence (``info["goal"]``), e.g. ``"put a clean mug in coffeemachine."``."""
    template = GOAL_TEMPLATES[scene.task_type][scene.template]
    text = template.format(obj=scene.obj.lower(), recep=(scene.recep or "").lower(),
                           toggle=(scene.toggle or "").lower())
    return text + "."


@lru_cache(maxsize=1)
def alfworld_data() -> tuple[str, str]:
    """(``alfred.pddl`` domain text, ``alfred.twl2`` grammar text) from the installed ``alfworld``."""
    import alfworld

    data = Path(alfworld.__file__).parent / "data"
    return (data / "alfred.pddl").read_text(), (data / "alfred.twl2").read_text()


def game_grammar(grammar: str, task: str) -> str:
    """ALFWorld's grammar with ``task`` in its ``task`` rule and no TextWorld banner."""
    task = task.rstrip(".").replace("\\", " ").replace('"', "'")
    grammar = grammar.replace("-= Welcome to TextWorld, ALFRED! =-\\n\\n", "")
    return grammar.replace("UNKNOWN GOAL", task)


def goal_pddl(scene: Scene) -> str:
    """The ``(:goal ...)`` of a scene's task (the semantics of ALFWorld's goal library)."""
    o, r = f"{scene.obj}Type", f"{scene.recep}Type"
    if scene.task_type == "look_at_obj_in_light":
        return (
            "(:goal (and\n"
            "  (exists (?ot - object ?r - receptacle ?a - agent ?l - location)\n"
            f"    (and (objectType ?ot {scene.toggle}Type) (toggleable ?ot) (isToggled ?ot)\n"
            "         (receptacleAtLocation ?r ?l) (atLocation ?a ?l) (inReceptacle ?ot ?r)))\n"
            f"  (exists (?o - object ?a - agent) (and (objectType ?o {o}) (holds ?a ?o)))))"
        )
    if scene.task_type == "pick_two_obj_and_place":
        return (
            "(:goal (exists (?r - receptacle) (exists (?o1 - object) (and\n"
            f"  (objectType ?o1 {o}) (receptacleType ?r {r}) (inReceptacle ?o1 ?r)\n"
            "  (exists (?o2 - object) (and (not (= ?o1 ?o2))\n"
            f"    (objectType ?o2 {o}) (inReceptacle ?o2 ?r)))))))"
        )
    extra = ""
    if scene.task_type in STATE_PREDICATE:
        prop = PROPERTY_PREDICATE[ACTION_PROPERTY[scene.task_type]]
        extra = f" ({prop} ?o) ({STATE_PREDICATE[scene.task_type]} ?o)"
    return (
        "(:goal (exists (?r - receptacle) (exists (?o - object) (and\n"
        f"  (objectType ?o {o}) (receptacleType ?r {r}) (inReceptacle ?o ?r){extra}))))"
    )


def problem_pddl(scene: Scene, name: str = "alfworld") -> str:
    """The PDDL problem of a scene: objects, initial facts and goal."""
    import alfworld.gen.constants as c

    recs = scene.receptacles
    locations = ["loc_bar_start"] + [f"loc_bar_{i}" for i in range(1, len(recs) + 1)]
    loc_of = {r.ident: locations[i + 1] for i, r in enumerate(recs)}
    rtypes = sorted({r.rtype for r in recs})
    otypes = sorted({i.otype for i in scene.items})
    init = ["(atLocation agent1 loc_bar_start)"]
    for r in recs:
        init.append(f"(receptacleAtLocation {r.ident} {loc_of[r.ident]})")
        init.append(f"(receptacleType {r.ident} {r.rtype}Type)")
        if r.openable:
            init.append(f"(openable {r.ident})")
    for it in scene.items:
        init.append(f"(objectType {it.ident} {it.otype}Type)")
        init.append(f"(inReceptacle {it.ident} {it.receptacle})")
        init.append(f"(objectAtLocation {it.ident} {loc_of[it.receptacle]})")
        if it.pickupable:
            init.append(f"(pickupable {it.ident})")
        for prop, pred in PROPERTY_PREDICATE.items():
            if it.otype in c.VAL_ACTION_OBJECTS[prop]:
                init.append(f"({pred} {it.ident})")
        if it.otype in c.VAL_ACTION_OBJECTS["Toggleable"]:
            init.append(f"(toggleable {it.ident})")
        if it.otype in c.VAL_ACTION_OBJECTS["Sliceable"]:
            init.append(f"(sliceable {it.ident})")
    for rt in rtypes:
        for ot in otypes:
            if ot in c.VAL_RECEPTACLE_OBJECTS.get(rt, ()):
                init.append(f"(canContain {rt}Type {ot}Type)")
    objects = (
        "    agent1 - agent\n"
        f"    {' '.join(locations)} - location\n"
        f"    {' '.join(r.ident for r in recs)} - receptacle\n"
        f"    {' '.join(i.ident for i in scene.items)} - object\n"
        f"    {' '.join(sorted({t + 'Type' for t in otypes} | {scene.obj + 'Type'} | ({scene.toggle + 'Type'} if scene.toggle else set())))} - otype\n"
        f"    {' '.join(sorted({t + 'Type' for t in rtypes} | ({scene.recep + 'Type'} if scene.recep else set())))} - rtype\n"
    )
    body = "\n    ".join(init)
    return (
        f"(define (problem {name})\n  (:domain alfred)\n  (:objects\n{objects}  )\n"
        f"  (:init\n    {body}\n  )\n  {goal_pddl(scene)}\n)\n"
    )


def game_json(scene: Scene, name: str = "alfworld") -> dict[str, Any]:
    """The ``.tw-pddl`` content of a scene, plus the scene itself under ``"agentrm_scene"``."""
    domain, grammar = alfworld_data()
    return {
        "pddl_domain": domain,
        "grammar": game_grammar(grammar, task_description(scene)),
        "pddl_problem": problem_pddl(scene, name),
        "agentrm_scene": scene.to_json(),
        "task_type": scene.task_type,
        "goal": task_description(scene),
    }


def write_game(path: Path, data: dict[str, Any]) -> None:
    """Write a game file atomically (temp file then rename), so concurrent builders never clash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)
