"""Cost and quality per episode of the planners on Maze (noisy scripted policy, oracle-distance scorer).

    python benchmarks/planner_cost.py [--p-noise 0.7] [--max-steps 20] [--episodes 25]

Prints, per method: progress and success rate on the test split and the mean cost per episode (env
steps, policy calls, proposals, scorer calls, wall seconds).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import agentrm_gym  # noqa: F401
from agentrm_gym.agents.planners import make_planner
from agentrm_gym.agents.policy import NoisyOraclePolicy
from agentrm_gym.cli.envs import format_table
from agentrm_gym.registry import task_scorer

METHODS = ("greedy", "bon:5", "beam:5x5", "beam:3x3", "mcts:10", "mcts:30")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--p-noise", type=float, default=0.7)
    ap.add_argument("--max-steps", type=int, default=20)
    ap.add_argument("--episodes", type=int, default=25)
    args = ap.parse_args()
    env = gym.make("agentrm/Maze-v0", split="test", max_episode_steps=args.max_steps)
    ids = env.unwrapped.task_ids("test")[: args.episodes]
    rows = []
    for method in METHODS:
        results = [make_planner(method, NoisyOraclePolicy(args.p_noise), task_scorer("Maze")).run(env, t, seed=i)
                   for i, t in enumerate(ids)]
        mean = {k: np.mean([getattr(r.cost, k) for r in results])
                for k in ("env_steps", "policy_calls", "proposals", "scorer_calls", "wall_seconds")}
        rows.append([method, f"{100 * np.mean([r.trajectory.progress for r in results]):.1f}",
                     f"{100 * np.mean([r.trajectory.success for r in results]):.1f}", f"{mean['env_steps']:.1f}",
                     f"{mean['policy_calls']:.1f}", f"{mean['proposals']:.1f}", f"{mean['scorer_calls']:.1f}",
                     f"{1000 * mean['wall_seconds']:.1f}"])
    print(f"Maze test split, {len(ids)} episodes, NoisyOraclePolicy(p_noise={args.p_noise}), "
          f"max {args.max_steps} steps, scorer = oracle BFS distance")
    print(format_table(["method", "progress %", "success %", "env steps", "policy calls", "proposals",
                        "scorer calls", "ms"], rows))


if __name__ == "__main__":
    main()
