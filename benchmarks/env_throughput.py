"""Env throughput: random-admissible steps/s, snapshot/restore cost and replay cost, for every registered env.

Usage::

    python benchmarks/env_throughput.py                    # every env available in this install
    python benchmarks/env_throughput.py --envs Maze,BabyAI --steps 500

For each env id of :func:`agentrm_gym.registry.available_specs` (tasks whose backend is missing are listed
as skipped; an env that fails to construct or step is reported in the table, not raised) it measures:

* ``steps/s``: random admissible actions (``action_space.sample()`` where the list is unknown), resetting
  to the next test task at the end of an episode;
* ``snap+restore ms``: one ``snapshot()`` plus one ``restore()`` (the native path where the env has one);
* ``replay ms``: the base class fallback, ``TextEnv.replay(task_id, reset_rng, actions)`` of the same
  snapshot, i.e. what restore would cost without a native state.

It also steps raw minigrid (random primitive actions on the same BabyAI levels) and prints the ratio of
raw minigrid to BabyAI text-env steps/s: the cost of the text layer (rendering, BFS macros, admissible list);
TextWorld's own ``PddlEnv`` on the same ALFWorld games; and the upstream ScienceWorld simulator.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import time
from dataclasses import dataclass

import gymnasium as gym

import agentrm_gym  # noqa: F401  (registers the ids)
from agentrm_gym.core import TextEnv, unwrap_text_env
from agentrm_gym.registry import TASKS, available_specs, missing_requirements


@dataclass
class Row:
    env_id: str
    status: str = "ok"
    steps_per_s: float | None = None
    snapshot_ms: float | None = None
    replay_ms: float | None = None
    native: bool | None = None
    replay_len: int = 0


def random_steps(env: gym.Env, base: TextEnv, n: int, rng: random.Random) -> float:
    """Steps/s of ``n`` random admissible actions, cycling through the test tasks."""
    tasks = base.task_ids("test")
    k = 0
    _, info = env.reset(seed=0, options={"task_id": tasks[k % len(tasks)]})
    start = time.perf_counter()
    for _ in range(n):
        acts = info.get("admissible_actions")
        action = rng.choice(acts) if acts else env.action_space.sample()
        _, _, term, trunc, info = env.step(action)
        if term or trunc:
            k += 1
            _, info = env.reset(seed=k, options={"task_id": tasks[k % len(tasks)]})
    return n / (time.perf_counter() - start)


def snapshot_costs(env: gym.Env, base: TextEnv, rng: random.Random, depth: int, reps: int) -> tuple:
    """(native snapshot+restore ms, replay ms, whether native, replayed actions) at ``depth`` steps in."""
    _, info = env.reset(seed=0, options={"task_id": base.task_ids("test")[0]})
    for _ in range(depth):
        acts = info.get("admissible_actions")
        _, _, term, trunc, info = env.step(rng.choice(acts) if acts else env.action_space.sample())
        if term or trunc:
            break
    start = time.perf_counter()
    for _ in range(reps):
        state = base.snapshot()
        base.restore(state)
    snap_ms = (time.perf_counter() - start) * 1000 / reps
    state = base.snapshot()
    start = time.perf_counter()
    for _ in range(reps):
        base.replay(state.task_id, state.reset_rng, state.actions)
    replay_ms = (time.perf_counter() - start) * 1000 / reps
    base.restore(state)
    return snap_ms, replay_ms, state.native is not None, len(state.actions)


def measure(env_id: str, steps: int, depth: int, reps: int) -> Row:
    row = Row(env_id)
    try:
        env = gym.make(env_id, split="test", disable_env_checker=True)
        base = unwrap_text_env(env)
    except Exception as err:  # a broken env is a row in the table, not a crash
        row.status = f"construct failed: {type(err).__name__}: {err}"[:80]
        return row
    try:
        rng = random.Random(0)
        row.steps_per_s = random_steps(env, base, steps, rng)
        row.snapshot_ms, row.replay_ms, row.native, row.replay_len = snapshot_costs(env, base, rng, depth, reps)
    except Exception as err:
        row.status = f"failed: {type(err).__name__}: {err}"[:80]
    finally:
        with contextlib.suppress(Exception):
            env.close()
    return row


def raw_minigrid_steps_per_s(steps: int) -> float:
    """Random primitive actions on the BabyAI test levels, straight on minigrid."""
    from agentrm_gym.envs.babyai import ALL_LEVELS, TEST_LEVEL_IDS, TEST_SEEDS, minigrid_id

    rng = random.Random(0)
    levels = [ALL_LEVELS[i] for i in TEST_LEVEL_IDS]
    envs = {lv: gym.make(minigrid_id(lv), disable_env_checker=True).unwrapped for lv in levels}
    k = 0
    env = envs[levels[0]]
    with contextlib.redirect_stdout(io.StringIO()):
        env.reset(seed=TEST_SEEDS[0])
    start = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(rng.randrange(6))
        if term or trunc or env.step_count >= 30:
            k += 1
            env = envs[levels[k % len(levels)]]
            with contextlib.redirect_stdout(io.StringIO()):
                env.reset(seed=TEST_SEEDS[k % len(TEST_SEEDS)])
    return steps / (time.perf_counter() - start)


def upstream_alfworld_steps_per_s(steps: int) -> float:
    """TextWorld's own ``PddlEnv`` (the engine alfworld plays its games with) on the same test games: random
    admissible commands (it lists them each step, as ours does), a new game every 30 steps."""
    import textworld
    from textworld.envs.pddl import PddlEnv

    from agentrm_gym.envs.alfworld.env import ALFWorldEnv

    base = ALFWorldEnv(split="test")
    paths = [str(base._game_path(t)) for t in base.task_ids("test")[:20]]
    env = PddlEnv(textworld.EnvInfos(admissible_commands=True, won=True))
    rng = random.Random(0)
    start = time.perf_counter()
    env.load(paths[0])
    state = env.reset()
    for n in range(1, steps + 1):
        state, _, done = env.step(rng.choice(state["admissible_commands"]))
        if done or n % 30 == 0:
            env.load(paths[(n // 30) % len(paths)])
            state = env.reset()
    return steps / (time.perf_counter() - start)


#: Commands for the list-free ScienceWorld loop: plausible words the JVM parses (valid or not) in any room.
SCIWORLD_PLAIN_COMMANDS = ("look around", "inventory", "task", "wait1", "go to hallway", "go to kitchen",
                           "open door to hallway", "look at door to kitchen")


def _sciworld_episodes(n_episodes: int) -> list[tuple[str, int]]:
    from agentrm_gym.envs.sciworld.tasks import TEST_EPISODES

    return list(TEST_EPISODES[:n_episodes])


def upstream_sciworld_steps_per_s(steps: int, listing: bool) -> float:
    """The ``scienceworld`` simulator as shipped (its JVM options), driven through its server calls on the same
    test episodes: a random valid action each step (``list(getValidActionObjectCombinations())``, as the
    package lists them, then ``step`` and the score), or with ``listing=False`` a random command of
    :data:`SCIWORLD_PLAIN_COMMANDS` (``step`` and the score alone). The package's own ``step()`` is not
    used: it also runs look, inventory, task and the valid-action listing for its ``infos``."""
    import scienceworld

    from agentrm_gym.envs.sciworld.tasks import simplifications_for

    rng = random.Random(0)
    episodes = _sciworld_episodes(10)
    sim = scienceworld.ScienceWorldEnv("", None, 10**9)
    try:
        k, t = 0, 0
        task, var = episodes[0]
        sim.load(task, var, simplifications_for(task))
        start = 0.0
        for i in range(-steps // 4, steps):  # a quarter more untimed first: the JVM's JIT warms up
            if i == 0:
                start = time.perf_counter()
            if listing:
                action = rng.choice(sorted(list(sim.server.getValidActionObjectCombinations())))
            else:
                action = rng.choice(SCIWORLD_PLAIN_COMMANDS)
            sim.server.step(action)
            done = sim.server.getCompleted() or sim.server.getScore() < 0
            t += 1
            if done or t >= 30:
                k, t = k + 1, 0
                task, var = episodes[k % len(episodes)]
                sim.load(task, var, simplifications_for(task))
        return steps / (time.perf_counter() - start)
    finally:
        sim.close()


def ours_sciworld_plain_steps_per_s(steps: int) -> float:
    """Our env with ``admissible_in_info=False`` on the loop of :func:`upstream_sciworld_steps_per_s` (``listing=False``)."""
    rng = random.Random(0)
    episodes = [f"{t}@{v}" for t, v in _sciworld_episodes(10)]
    env = gym.make("agentrm/ScienceWorld-v0", split="test", admissible_in_info=False, disable_env_checker=True)
    try:
        k = 0
        env.reset(seed=0, options={"task_id": episodes[0]})
        start = 0.0
        for i in range(-steps // 4, steps):
            if i == 0:
                start = time.perf_counter()
            _, _, term, trunc, _ = env.step(rng.choice(SCIWORLD_PLAIN_COMMANDS))
            if term or trunc:
                k += 1
                env.reset(seed=k, options={"task_id": episodes[k % len(episodes)]})
        return steps / (time.perf_counter() - start)
    finally:
        env.close()


def babyai_primitives_per_step(steps: int) -> float:
    """Mean minigrid primitives one random admissible BabyAI text step runs (a macro walks a BFS path)."""
    env = gym.make("agentrm/BabyAI-v0", split="test", disable_env_checker=True)
    base = unwrap_text_env(env)
    rng = random.Random(0)
    tasks = base.task_ids("test")
    k, primitives = 0, 0
    _, info = env.reset(seed=0, options={"task_id": tasks[0]})
    for _ in range(steps):
        before = base.env.step_count
        _, _, term, trunc, info = env.step(rng.choice(info["admissible_actions"]))
        primitives += base.env.step_count - before
        if term or trunc:
            k += 1
            _, info = env.reset(seed=k, options={"task_id": tasks[k % len(tasks)]})
    return primitives / steps


def fmt(x: float | None, spec: str) -> str:
    width = int(spec.split(".")[0])
    return f"{'-':>{width}}" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", default="", help="comma-separated task names (default: all available)")
    parser.add_argument("--steps", type=int, default=1000, help="random steps per env")
    parser.add_argument("--depth", type=int, default=10, help="steps taken before the snapshot measurement")
    parser.add_argument("--reps", type=int, default=20, help="repetitions of snapshot/restore and of replay")
    args = parser.parse_args(argv)
    wanted = {w.strip().lower() for w in args.envs.split(",") if w.strip()}
    unknown = wanted - {name.lower() for name in TASKS}
    if unknown:
        parser.error(f"unknown task(s) {sorted(unknown)}; known: {', '.join(TASKS)}")

    rows: list[Row] = []
    for spec in available_specs():
        if wanted and spec.name.lower() not in wanted:
            continue
        missing = missing_requirements(spec)
        if missing:
            rows.append(Row(spec.env_id, status=f"skipped: needs {', '.join(missing)} ([{spec.extra}])"))
            continue
        rows.append(measure(spec.env_id, args.steps, args.depth, args.reps))
    for name in sorted(wanted - {s.name.lower() for s in available_specs()}):
        spec = TASKS[next(k for k in TASKS if k.lower() == name)]
        rows.append(Row(spec.env_id, status=f"skipped: module {spec.module} not found"))

    header = f"{'env':<28} {'steps/s':>9} {'snap+restore ms':>16} {'native':>7} {'replay ms':>10} {'replayed':>9}  status"
    print(header)
    print("-" * len(header))
    for r in rows:
        native = "-" if r.native is None else ("yes" if r.native else "no")
        print(f"{r.env_id:<28} {fmt(r.steps_per_s, '9.0f')} {fmt(r.snapshot_ms, '16.3f')} {native:>7} "
              f"{fmt(r.replay_ms, '10.2f')} {r.replay_len if r.native is not None else '-':>9}  {r.status}")

    babyai = next((r for r in rows if r.env_id == "agentrm/BabyAI-v0" and r.steps_per_s), None)
    if babyai is not None:
        raw = raw_minigrid_steps_per_s(args.steps)
        print(f"\nraw minigrid (random primitives, same BabyAI levels): {raw:.0f} steps/s; "
              f"text layer costs x{raw / babyai.steps_per_s:.1f} per step "
              "(one text step may run several primitives)")
        per_step = babyai_primitives_per_step(min(args.steps, 500))
        print(f"BabyAI text steps/s vs raw minigrid steps/s: x{babyai.steps_per_s / raw:.2f}; a text step runs "
              f"{per_step:.2f} primitives, so per primitive the text env runs at x{babyai.steps_per_s * per_step / raw:.2f} "
              "of raw minigrid")
    alfworld = next((r for r in rows if r.env_id == "agentrm/ALFWorld-v0" and r.steps_per_s), None)
    if alfworld is not None:
        upstream = upstream_alfworld_steps_per_s(max(60, args.steps // 5))
        print(f"\nTextWorld's own PddlEnv on the same ALFWorld games (random admissible commands, listed every step): "
              f"{upstream:.1f} steps/s; ours {alfworld.steps_per_s:.0f} steps/s = x{alfworld.steps_per_s / upstream:.0f}")
    sciworld = next((r for r in rows if r.env_id == "agentrm/ScienceWorld-v0" and r.steps_per_s), None)
    if sciworld is not None:
        n = max(20, args.steps // 5)
        upstream = upstream_sciworld_steps_per_s(n, listing=True)
        print(f"\nupstream scienceworld simulator (default JVM options, random valid action, listing every step): {upstream:.1f} "
              f"steps/s; ours {sciworld.steps_per_s:.1f} steps/s = x{sciworld.steps_per_s / upstream:.2f} of upstream")
        upstream_plain = upstream_sciworld_steps_per_s(n, listing=False)
        ours_plain = ours_sciworld_plain_steps_per_s(n)
        print(f"without the listing (admissible_in_info=False, plain commands): ours {ours_plain:.1f} steps/s, "
              f"upstream {upstream_plain:.1f} steps/s = x{ours_plain / upstream_plain:.2f} of upstream")
    return rows


if __name__ == "__main__":
    main()
