"""Throughput of the tiny transformers policy: batched vs one state at a time.

Builds the tiny GPT-2-style policy (seconds), takes S Maze states and asks for n candidates each, once as a
single ``propose_batch`` (all S * n samples in one ``generate``) and once state by state and sample by
sample. Prints generated tokens/s and actions/s of both.

    python benchmarks/policy_throughput.py [--states 8] [--n 4] [--max-new-tokens 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import gymnasium as gym
import torch

import agentrm_gym  # noqa: F401
from agentrm_gym.agents.factory import make_policy
from agentrm_gym.agents.runner import oracle_trajectory
from agentrm_gym.agents.tiny import build_tiny_policy
from agentrm_gym.cli.envs import format_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--states", type=int, default=8)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    path = build_tiny_policy(tempfile.mkdtemp(), episodes=20)
    build_s = time.perf_counter() - t0
    policy = make_policy(str(path), seed=0, max_new_tokens=args.max_new_tokens, device="cpu")
    env = gym.make("agentrm/Maze-v0", split="test")
    ids = env.unwrapped.task_ids("test")
    states = [oracle_trajectory(env, ids[i % len(ids)]).state(upto=i % 4) for i in range(args.states)]
    policy.propose_batch(states[:1], 1, 1.0)  # warm-up

    rows = []
    for mode in ("batched", "one at a time"):
        policy.seed(0)
        t = time.perf_counter()
        if mode == "batched":
            props = [p for row in policy.propose_batch(states, args.n, 1.0) for p in row]
        else:
            props = [p for s in states for _ in range(args.n) for p in policy.propose(s, 1, 1.0)]
        dt = time.perf_counter() - t
        tokens = sum(p.num_tokens for p in props)
        rows.append([mode, len(props), tokens, f"{dt:.2f}", f"{tokens / dt:.0f}", f"{len(props) / dt:.1f}"])
    print(f"tiny policy: {sum(p.numel() for p in policy.model.parameters()) / 1e6:.2f}M parameters, "
          f"vocab {len(policy.tokenizer)}, built in {build_s:.1f}s; {args.states} states x n={args.n}, "
          f"max_new_tokens={args.max_new_tokens}, torch threads={args.threads}")
    print(format_table(["mode", "actions", "tokens", "seconds", "tokens/s", "actions/s"], rows))


if __name__ == "__main__":
    main()
