"""Best-of-N against an OpenAI-compatible server (``vllm serve`` or ``agentrm serve policy``).

Start a server, e.g. ``agentrm serve policy --model PATH --port 8000`` (or ``vllm serve MODEL``), then::

    python examples/best_of_n_openai.py --url http://127.0.0.1:8000/v1 --env Maze --n 5

Without a reward model this example ranks the N trajectories with the env's own progress rate
(``ProgressScorer``: an oracle upper bound); pass a trained RM to ``BestOfN`` for a real agent.
"""

from __future__ import annotations

import argparse

import agentrm_gym
from agentrm_gym.agents import BestOfN, ProgressScorer
from agentrm_gym.agents.openai_backend import OpenAIPolicy


def main() -> None:
    ap = argparse.ArgumentParser(description="Best-of-N with an OpenAI-compatible endpoint")
    ap.add_argument("--url", default="http://127.0.0.1:8000/v1")
    ap.add_argument("--model", default=None, help="model name (default: the server's first)")
    ap.add_argument("--env", default="Maze")
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--episodes", type=int, default=3)
    args = ap.parse_args()
    env = agentrm_gym.make(args.env, split="test")
    policy = OpenAIPolicy(args.url, model=args.model, max_new_tokens=64, seed=0)
    for task_id in env.unwrapped.task_ids("test")[: args.episodes]:
        result = BestOfN(policy, ProgressScorer(), n=args.n).run(env, task_id)
        t = result.trajectory
        print(f"{task_id}: progress {t.progress:.2f} success {t.success} "
              f"({result.cost.env_steps} env steps, {result.cost.generated_tokens} tokens)")
    policy.close()
    env.close()


if __name__ == "__main__":
    main()
