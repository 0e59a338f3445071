"""Seeded problem generators for the four AgentBoard PDDL domains, written as standard PDDL problems.

Each generator takes a ``numpy`` generator and a ``split`` and returns the problem text. Sizes follow
AgentBoard's test problems, small enough that a near-optimal plan fits well within 30 steps:
blockworld 3-5 blocks (train up to 6), gripper 2-4 balls in two rooms (train up to 5 balls, 3 rooms),
barman one cocktail, sometimes with one or two plain ingredient shots, tyreworld one wheel.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: The four domains in AgentBoard's order, with their number of test problems (60 in all).
TEST_COUNTS: dict[str, int] = {"gripper": 20, "blockworld": 10, "barman": 20, "tyreworld": 10}
DOMAINS: tuple[str, ...] = tuple(TEST_COUNTS)


def _problem(name: str, domain: str, objects: list[str], init: list[str], goal: list[str]) -> str:
    lines = [f"(define (problem {name})", f"  (:domain {domain})", "  (:objects"]
    lines += [f"    {o}" for o in objects]
    lines += ["  )", "  (:init"]
    lines += [f"    {f}" for f in init]
    lines += ["  )", "  (:goal (and"]
    lines += [f"    {g}" for g in goal]
    lines += ["  ))", ")", ""]
    return "\n".join(lines)


def _random_towers(blocks: list[str], rng: np.random.Generator) -> list[list[str]]:
    order = [blocks[i] for i in rng.permutation(len(blocks))]
    towers: list[list[str]] = [[order[0]]]
    for b in order[1:]:
        if rng.random() < 0.5:
            towers[int(rng.integers(len(towers)))].append(b)
        else:
            towers.append([b])
    return towers


def blockworld(rng: np.random.Generator, split: str, name: str = "blockworld") -> str:
    """Random initial towers of 3-5 blocks (train 3-6) and a goal of ``on`` facts from other towers."""
    n = int(rng.integers(3, 6 if split == "test" else 7))
    blocks = [f"b{i}" for i in range(1, n + 1)]
    while True:
        start, target = _random_towers(blocks, rng), _random_towers(blocks, rng)
        goal = sorted(f"(on {t[i + 1]} {t[i]})" for t in target for i in range(len(t) - 1))
        init = ["(arm-empty)"]
        for t in start:
            init.append(f"(on-table {t[0]})")
            init += [f"(on {t[i + 1]} {t[i]})" for i in range(len(t) - 1)]
            init.append(f"(clear {t[-1]})")
        if goal and not set(goal) <= set(init):
            return _problem(name, "blockworld", [" ".join(blocks)], init, goal)


def gripper(rng: np.random.Generator, split: str, name: str = "gripper") -> str:
    """AgentBoard-like: the balls start in one room and (most of) them must be carried to another.

    Two rooms and 2-4 balls at test time; the train split also has three rooms and up to 5 balls, and
    some balls may start elsewhere.
    """
    n_balls = int(rng.integers(2, 5 if split == "test" else 6))
    n_rooms = 2 if split == "test" else int(rng.integers(2, 4))
    rooms = ["rooma", "roomb", "roomc"][:n_rooms]
    balls = [f"ball{i}" for i in range(1, n_balls + 1)]
    source, dest = (rooms[int(i)] for i in rng.choice(n_rooms, size=2, replace=False))
    scatter = 0.0 if split == "test" else 0.3
    where = {b: rooms[int(rng.integers(n_rooms))] if rng.random() < scatter else source for b in balls}
    movers = [b for b in balls if rng.random() < 0.85] or [balls[-1]]
    goal = [f"(at {b} {dest})" for b in movers]
    if all(where[b] == dest for b in movers):
        where[movers[0]] = source
    robby = rooms[int(rng.integers(n_rooms))]
    init = [f"(room {r})" for r in rooms] + [f"(ball {b})" for b in balls]
    init += ["(gripper left)", "(gripper right)", "(free left)", "(free right)", f"(at-robby {robby})"]
    init += [f"(at {b} {where[b]})" for b in balls]
    return _problem(name, "gripper", [" ".join(rooms), " ".join(balls), "left right"], init, goal)


def barman(rng: np.random.Generator, split: str, name: str = "barman") -> str:
    """One shaker, three ingredients and dispensers, three cocktails; serve one or two drinks.

    Goals: one cocktail (40%), a cocktail and a plain ingredient shot (40%), or a cocktail and two
    ingredient shots (20%). (Two cocktails need about 24 steps, too close to the 30-step limit.)
    """
    ingredients = ["ingredient1", "ingredient2", "ingredient3"]
    cocktails = ["cocktail1", "cocktail2", "cocktail3"]
    pairs = [(a, b) for a in ingredients for b in ingredients if a != b]
    recipe = {c: pairs[i] for c, i in zip(cocktails, rng.choice(len(pairs), size=3, replace=False), strict=True)}
    mode = rng.random()
    n_plain = 0 if mode < 0.4 else 1 if mode < 0.8 else 2
    served = [cocktails[int(rng.integers(3))]]
    served += [ingredients[int(rng.integers(3))] for _ in range(n_plain)]
    n_shots = len(served) + 1
    shots = [f"shot{i}" for i in range(1, n_shots + 1)]
    order = [shots[i] for i in rng.permutation(n_shots)]
    goal = [f"(contains {order[i]} {drink})" for i, drink in enumerate(served)]
    init = ["(ontable shaker1)"] + [f"(ontable {s})" for s in shots]
    init += [f"(dispenses dispenser{i} ingredient{i})" for i in (1, 2, 3)]
    init += ["(clean shaker1)"] + [f"(clean {s})" for s in shots]
    init += ["(empty shaker1)"] + [f"(empty {s})" for s in shots]
    init += ["(handempty left)", "(handempty right)", "(shaker-empty-level shaker1 l0)", "(shaker-level shaker1 l0)"]
    init += ["(next l0 l1)", "(next l1 l2)"]
    for c in cocktails:
        init += [f"(cocktail-part1 {c} {recipe[c][0]})", f"(cocktail-part2 {c} {recipe[c][1]})"]
    objects = [
        "shaker1 - shaker", "left right - hand", f"{' '.join(shots)} - shot",
        f"{' '.join(ingredients)} - ingredient", f"{' '.join(cocktails)} - cocktail",
        "dispenser1 dispenser2 dispenser3 - dispenser", "l0 l1 l2 - level",
    ]
    return _problem(name, "barman", objects, init, goal)


def tyreworld(rng: np.random.Generator, split: str, name: str = "tyreworld") -> str:
    """One flat wheel to replace by the intact spare in the boot, plus a random part of the tidy-up goal."""
    init = [
        "(in jack boot)", "(in pump boot)", "(in wrench boot)", "(unlocked boot)", "(closed boot)",
        "(intact r1)", "(in r1 boot)", "(on w1 the-hub1)", "(on-ground the-hub1)",
        "(tight nuts1 the-hub1)", "(fastened the-hub1)",
    ]
    init.append("(inflated r1)" if rng.random() < 0.2 else "(not-inflated r1)")
    extras = [
        "(inflated r1)", "(in w1 boot)", "(tight nuts1 the-hub1)", "(in wrench boot)",
        "(in jack boot)", "(in pump boot)", "(closed boot)",
    ]
    goal = ["(on r1 the-hub1)"] + [g for g in extras if rng.random() < 0.5]
    objects = ["the-hub1 - hub", "nuts1 - nut", "boot - container", "r1 w1 - wheel"]
    return _problem(name, "tyreworld", objects, init, goal)


GENERATORS: dict[str, Callable[..., str]] = {
    "blockworld": blockworld,
    "gripper": gripper,
    "barman": barman,
    "tyreworld": tyreworld,
}


def generate(domain: str, split: str, index: int) -> str:
    """The problem text of ``<domain>-<split>-<index>`` (deterministic: seeded by the three)."""
    if domain not in GENERATORS:
        raise KeyError(f"unknown PDDL domain {domain!r}; known: {', '.join(GENERATORS)}")
    seed = [DOMAINS.index(domain), 0 if split == "test" else 1, index]
    rng = np.random.default_rng(seed)
    return GENERATORS[domain](rng, split, name=f"{domain}-{split}-{index}")
