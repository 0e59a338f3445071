"""ScienceWorld restores in a Best-of-N lockstep: one JVM (reload + replay) vs a pool of JVMs.

Best-of-N plays its N candidates in lockstep in one env, restoring each candidate's state before its
step. ScienceWorld has no native snapshot: with one JVM a restore reloads the task and replays the whole
history, so an episode costs O(steps^2) commands; with ``simulators=N`` (the env's default is 6) each
candidate keeps the JVM that holds its state and a restore sends no command. The workload: ``--episodes``
test ids, ``--n`` candidates, ``--steps`` lockstep steps, each candidate taking seeded random admissible
actions (``focus on`` excluded so that episodes run their course). Both settings replay the same actions,
side by side in one run; the table prints wall seconds per episode (JVM start-up included: the pool's
extra JVMs start in the first episode), the mean restore time, and whether both saw the same observations.

    python benchmarks/sciworld_restore.py [--episodes 3] [--n 5] [--steps 20]
"""

from __future__ import annotations

import argparse
import random
import time

import gymnasium as gym

import agentrm_gym  # noqa: F401
from agentrm_gym.cli.envs import format_table
from agentrm_gym.core import restore, snapshot
from agentrm_gym.registry import get_spec, missing_requirements


def lockstep(env: gym.Env, task_id: str, n: int, steps: int, seed: int) -> tuple[list[str], float, float]:
    """(observations, wall seconds, mean restore ms) of one lockstep episode."""
    began = time.perf_counter()
    _, info = env.reset(seed=0, options={"task_id": task_id})
    states = [snapshot(env)] * n
    admissible = [info["admissible_actions"]] * n
    rngs = [random.Random(f"{seed}/{task_id}/{c}") for c in range(n)]
    done = [False] * n
    seen: list[str] = []
    restore_s, restores = 0.0, 0
    for _ in range(steps):
        for c in range(n):
            if done[c]:
                continue
            t = time.perf_counter()
            restore(env, states[c])
            restore_s += time.perf_counter() - t
            restores += 1
            choices = [a for a in admissible[c] if not a.startswith("focus on")] or ["look around"]
            obs, _, terminated, truncated, info = env.step(rngs[c].choice(choices))
            seen.append(obs)
            states[c], admissible[c], done[c] = snapshot(env), info["admissible_actions"], terminated or truncated
    return seen, time.perf_counter() - began, 1000 * restore_s / max(1, restores)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    if missing_requirements(get_spec("ScienceWorld")):
        print("ScienceWorld is not installed (pip install 'agentrm-gym[sciworld]' and a Java runtime)")
        return
    envs = {k: gym.make("agentrm/ScienceWorld-v0", split="test", simulators=k) for k in (1, max(1, args.n))}
    ids = envs[1].unwrapped.task_ids("test")[:: max(1, 90 // max(1, args.episodes))][: args.episodes]
    rows, totals = [], {k: 0.0 for k in envs}
    for task_id in ids:
        out = {k: lockstep(env, task_id, args.n, args.steps, seed=0) for k, env in envs.items()}
        (obs1, s1, r1), (obsn, sn, rn) = out[1], out[max(1, args.n)]
        totals[1] += s1
        totals[max(1, args.n)] += sn
        rows.append([task_id, f"{s1:.1f}", f"{sn:.1f}", f"{s1 / sn:.2f}x", f"{r1:.0f}", f"{rn:.1f}",
                     "yes" if obs1 == obsn else "NO"])
    for env in envs.values():
        env.close()
    print(f"Best-of-{args.n} lockstep, {args.steps} steps, random admissible actions")
    print(format_table(["task id", "1 JVM s", f"{args.n} JVMs s", "speed-up", "restore ms (1)",
                        f"restore ms ({args.n})", "same observations"], rows))
    print(f"total: 1 JVM {totals[1]:.1f} s, {args.n} JVMs {totals[max(1, args.n)]:.1f} s: "
          f"{totals[1] / totals[max(1, args.n)]:.2f}x")


if __name__ == "__main__":
    main()
