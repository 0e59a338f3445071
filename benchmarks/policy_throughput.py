"""Policy sampling throughput on the Best-of-5 lockstep of a 20-step episode: KV sampler vs HF generate.

The workload is recorded once: Best-of-N (N=5, temperature 0.5) plays ``--episodes`` episodes of a task
with the policy and every step's 5 prompts are kept. The same prompt lists are then replayed, side by side
in one run and with the same seeds, through three engines:

* ``kv batched``: :class:`~agentrm_gym.agents.hf.HFGenerator` ``mode="kv"`` (the default): one call per
  step, identical prompts encoded once, each row stopped at its own end, each prompt resumed from the
  longest prefix it shares with a recent prompt (the engine's prefix cache);
* ``kv batched, no prefix cache``: the same without the cache (each call encodes its prompts whole);
* ``kv one at a time``: the default engine, one prompt per call;
* ``HF generate``: ``mode="generate"``: one ``transformers`` ``generate`` call per step with
  ``stop_strings`` (the previous default).

The policy is ``--policy DIR`` (e.g. ``RUN/sft/policy`` of a pipeline run: then with the run's own prompt
builder and budget, as its evaluation sees it) or, by default, a tiny GPT-2 trained for ``--sft-steps`` on
Maze expert dialogues (a minute). Prints generated tokens/s per engine and
ends with ``batched/unbatched speed-up: X.Xx`` and ``vs generate: X.Xx`` (ratios of wall time on the
same prompts).

    python benchmarks/policy_throughput.py [--policy DIR] [--task Maze] [--episodes 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import agentrm_gym  # noqa: F401
from agentrm_gym.agents.hf import HFGenerator
from agentrm_gym.agents.planners import BestOfN
from agentrm_gym.cli.envs import format_table
from agentrm_gym.registry import make


class RecordingPolicy:
    """Wraps a policy's ``propose_batch`` to keep the prompts of every call."""

    def __init__(self, policy):
        self.policy = policy
        self.calls: list[list[str]] = []

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def propose_batch(self, states, n, temperature):
        self.calls.append(self.policy.prompts(states) * n)
        return self.policy.propose_batch(states, n, temperature)


def decode_step_ms(model, batch: int, past: int, repeats: int = 50) -> float:
    """Milliseconds of one single-token forward pass of ``batch`` rows over a ``past``-token KV cache."""
    from transformers import DynamicCache

    from agentrm_gym.agents.sampling import _cache_kwarg

    kw = _cache_kwarg(model)
    with torch.inference_mode():
        cache = DynamicCache()
        model(input_ids=torch.randint(2, 100, (batch, past)), use_cache=True, **{kw: cache})
        mask = torch.ones(batch, past + 1, dtype=torch.long)
        pos, token = torch.full((batch, 1), past), torch.randint(2, 100, (batch, 1))
        start = time.perf_counter()
        for _ in range(repeats):
            model(input_ids=token, attention_mask=mask, position_ids=pos, use_cache=True, **{kw: cache})
            cache.crop(-1)  # back to the past tokens
        return 1000 * (time.perf_counter() - start) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy", default="", help="a causal-LM directory (default: train a tiny Maze policy)")
    ap.add_argument("--task", default="Maze")
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--sft-steps", type=int, default=150)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from agentrm_gym.agents.factory import make_policy

    path = args.policy
    if not path:
        from agentrm_gym.train.sft_trainer import build_sft_tiny_policy

        path = str(build_sft_tiny_policy(tempfile.mkdtemp(), tasks=(args.task,), episodes=30,
                                         sft_steps=args.sft_steps))
    run_config = Path(path).parent.parent / "config.json"  # RUN/sft/policy: the run's prompt and budget
    if run_config.is_file():
        from dataclasses import replace

        from agentrm_gym.train.config import load_config
        from agentrm_gym.train.sft_stage import make_pipeline_policy

        cfg = replace(load_config(run_config), max_new_tokens=args.max_new_tokens)
        policy = make_pipeline_policy(path, cfg, seed=0)
    else:
        policy = make_policy(path, seed=0, max_new_tokens=args.max_new_tokens, device="cpu")
    recorder = RecordingPolicy(policy)
    env = make(args.task, split="test")
    ids = env.unwrapped.task_ids("test")
    planner = BestOfN(recorder, lambda s: np.zeros(len(s)), n=args.n, temperature=0.5, max_steps=args.steps)
    for k in range(args.episodes):
        planner.run(env, ids[k % len(ids)], seed=k)
    env.close()
    workload = recorder.calls
    prompts = sum(len(c) for c in workload)
    model, tok = policy.model, policy.tokenizer

    def replay(name: str, mode: str, one_at_a_time: bool, cache_mb: float) -> tuple[float, int]:
        engine = HFGenerator(model, tok, mode=mode, prefix_cache_mb=cache_mb)
        engine.generate(workload[0][:1], 1, 0.5, 4)  # warm-up
        torch.manual_seed(0)
        tokens, t0 = 0, time.perf_counter()
        for call in workload:
            batches = [[p] for p in call] if one_at_a_time else [call]
            for b in batches:
                tokens += sum(len(s.token_ids) for row in engine.generate(b, 1, 0.5, args.max_new_tokens) for s in row)
        dt = time.perf_counter() - t0
        if engine.prefix_cache is not None:
            c = engine.prefix_cache
            reuse[name] = f"{c.reused / max(1, c.reused + c.encoded):.0%}"
        return dt, tokens

    results: dict[str, tuple[float, int]] = {}
    reuse: dict[str, str] = {}
    for name, mode, single, cache_mb in (("kv batched", "kv", False, 256), ("kv batched, no prefix cache", "kv", False, 0),
                                         ("kv one at a time", "kv", True, 256),
                                         ("HF generate (batched)", "generate", False, 0)):
        results[name] = replay(name, mode, single, cache_mb)
    rows = [[name, f"{dt:.2f}", tokens, f"{tokens / dt:.0f}", f"{prompts / dt:.1f}", reuse.get(name, "-")]
            for name, (dt, tokens) in results.items()]
    print(f"policy {path}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; workload: "
          f"{args.episodes} Best-of-{args.n} episodes of {args.task} ({len(workload)} lockstep calls, {prompts} "
          f"prompts), max_new_tokens={args.max_new_tokens}, torch threads={args.threads}")
    print(format_table(["engine", "seconds", "tokens", "tokens/s", "turns/s", "prompt tokens reused"], rows))
    # what is left once the prompts are resumed: one decoding forward pass per generated token
    past = max(len(tok(p, add_special_tokens=False)["input_ids"]) for call in workload for p in call)
    steps = ", ".join(f"batch {b}: {decode_step_ms(model, b, past):.2f} ms" for b in (1, args.n))
    print(f"one decoding forward pass over a {past}-token cache: {steps}")
    # the same prompts for every engine: the speed-up is the ratio of wall times on the workload
    kv = results["kv batched"][0]
    print(f"batched/unbatched speed-up: {results['kv one at a time'][0] / kv:.1f}x")
    print(f"vs generate: {results['HF generate (batched)'][0] / kv:.1f}x")


if __name__ == "__main__":
    main()
