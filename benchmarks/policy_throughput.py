"""Policy sampling throughput on the Best-of-5 lockstep of a 20-step episode: fused decoding vs HF generate.

The workload is recorded once: Best-of-N (N=5, temperature 0.5) plays ``--episodes`` episodes of a task
with the policy and every step's 5 prompts are kept. The same prompt lists are then replayed, side by side
in one run and with the same seeds, through four engines (``--rounds`` interleaved replays, the fastest of
each kept):

* ``fused batched (default)``: :class:`~agentrm_gym.agents.hf.HFGenerator` ``mode="kv"``: one call per
  step, identical prompts encoded once, each row stopped at its own end, each prompt resumed from the
  longest prefix it shares with a recent prompt (the prefix cache), prompt passes and decoding steps run by
  the fused GPT-2 step of :mod:`agentrm_gym.agents.decode` (static KV cache, no module dispatch);
* ``fused one at a time``: the same engine, one prompt per call;
* ``module batched (fused=False)``: the same sampler through the model's ``forward`` (the previous default);
* ``HF generate (batched)``: ``mode="generate"``: one ``transformers`` ``generate`` call per step with
  ``stop_strings``: the anchor every ratio is taken against.

It prints tokens/s per engine, the seconds the sampler spent in prompt passes (the same tokens are encoded
whatever the batching), whether the fused and the module decoding sampled the same tokens, the speed-ups
(ratios of wall time on the same prompts), and one decoding forward pass at batch 1 and ``--n``: the fused
step vs the ``transformers`` module forward, timed alternately, beside the arithmetic floor (the pass's
FLOPs at the rate this CPU reaches on a 512x512 matmul in the same run). ``--compile`` also times
``torch.compile`` of the fused step (minutes of compiling).

The policy is ``--policy DIR`` (e.g. ``RUN/sft/policy`` of a pipeline run: then with the run's own prompt
builder and budget, as its evaluation sees it) or, by default, a tiny GPT-2 trained for ``--sft-steps`` on
Maze expert dialogues (a minute).

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
from agentrm_gym.agents import sampling
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


def decode_step_ms(model, batch: int, past: int, fused: bool, repeats: int = 50) -> float:
    """Milliseconds of one single-token forward pass of ``batch`` rows over a ``past``-token KV cache: the
    fused step (:mod:`agentrm_gym.agents.decode`, static cache) or the ``transformers`` module forward
    (``DynamicCache``)."""
    from transformers import DynamicCache

    from agentrm_gym.agents.decode import FusedDecoding, StaticKVCache, fused_decoder
    from agentrm_gym.agents.sampling import _cache_kwarg

    kw = _cache_kwarg(model)
    ids = torch.randint(2, 100, (batch, past))
    mask = torch.ones(batch, past + 1, dtype=torch.long)
    pos, token = torch.full((batch, 1), past), torch.randint(2, 100, (batch, 1))
    with torch.inference_mode():
        if fused:
            decoder = fused_decoder(model)
            cache = StaticKVCache.allocate(decoder, batch, past + 1, "cpu")
            decoder.prefill(ids, torch.arange(past).expand(batch, past), mask[:, :past], cache)
            decoding = FusedDecoding(decoder, cache, mask[:, :past], pos, torch.arange(batch), 1)
        else:
            cache = DynamicCache()
            model(input_ids=ids, use_cache=True, **{kw: cache})
        start = time.perf_counter()
        for _ in range(repeats):
            if fused:
                decoding.t, cache.length = 0, past  # back to the past tokens
                decoding.step(token[:, 0])
            else:
                model(input_ids=token, attention_mask=mask, position_ids=pos, use_cache=True, **{kw: cache})
                cache.crop(-1)
        return 1000 * (time.perf_counter() - start) / repeats


def step_costs(model, batch: int, past: int, rounds: int = 5) -> tuple[float, float]:
    """Median ms of the fused step and of the module forward, timed in alternating rounds (the same load)."""
    fused, module = [], []
    for _ in range(rounds):
        fused.append(decode_step_ms(model, batch, past, True))
        module.append(decode_step_ms(model, batch, past, False))
    return float(np.median(fused)), float(np.median(module))


def step_flops(model, batch: int, past: int) -> float:
    """FLOPs of one GPT-2 decoding pass: the layers' projections, attention over ``past + 1`` keys, the head."""
    c = model.config
    width, inner = c.n_embd, c.n_inner or 4 * c.n_embd
    per_layer = 2 * width * (3 * width + width + 2 * inner) + 4 * (past + 1) * width
    return batch * (c.n_layer * per_layer + 2 * width * c.vocab_size)


def matmul_gflops(size: int = 512, repeats: int = 20) -> float:
    """GFLOP/s of a ``size``-square float32 matmul on this machine (the arithmetic floor's rate)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def compiled_step_ms(model, batch: int, past: int, repeats: int = 50) -> tuple[float, float, bool]:
    """``(seconds to compile, ms per step, same logits as eager)`` of ``torch.compile`` on the fused step."""
    from agentrm_gym.agents.decode import StaticKVCache, fused_decoder

    decoder = fused_decoder(model)
    cache = StaticKVCache.allocate(decoder, batch, past + 1, "cpu")
    token, pe = torch.randint(2, 100, (batch, 1)), decoder.position_embeddings(torch.full((batch, 1), past))
    step = torch.compile(decoder.forward, dynamic=False)
    with torch.inference_mode():
        decoder.prefill(torch.randint(2, 100, (batch, past)), torch.arange(past).expand(batch, past),
                        torch.ones(batch, past, dtype=torch.long), cache)
        cache.length = past
        eager = decoder.forward(token, pe, cache)
        start = time.perf_counter()
        cache.length = past
        same = torch.equal(step(token, pe, cache), eager)
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(repeats):
            cache.length = past
            step(token, pe, cache)
        return compile_s, 1000 * (time.perf_counter() - start) / repeats, same


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
    ap.add_argument("--rounds", type=int, default=2, help="interleaved replays of every engine (the fastest kept)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the fused step")
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

    encode = sampling._encode

    def timed_encode(*a, **k):  # the sampler's prompt passes, timed
        t = time.perf_counter()
        try:
            return encode(*a, **k)
        finally:
            encoding[0] += time.perf_counter() - t

    sampling._encode = timed_encode
    encoding = [0.0]

    def replay(name: str, mode: str, one_at_a_time: bool, fused: bool) -> tuple[float, int]:
        engine = HFGenerator(model, tok, mode=mode, fused=fused)
        engine.generate(workload[0][:1], 1, 0.5, 4)  # warm-up
        engine.seed(0)
        encoding[0] = 0.0
        tokens, t0, out = 0, time.perf_counter(), []
        for call in workload:
            batches = [[p] for p in call] if one_at_a_time else [call]
            for b in batches:
                for row in engine.generate(b, 1, 0.5, args.max_new_tokens):
                    tokens += sum(len(s.token_ids) for s in row)
                    out.append([s.token_ids for s in row])
        dt = time.perf_counter() - t0
        samples[name] = out
        if mode == "kv":
            prompt_s.setdefault(name, []).append((dt, encoding[0]))
        if engine.prefix_cache is not None:
            c = engine.prefix_cache
            reuse[name] = f"{c.reused / max(1, c.reused + c.encoded):.0%}"
        return dt, tokens

    engines = (("fused batched (default)", "kv", False, True), ("fused one at a time", "kv", True, True),
               ("module batched (fused=False)", "kv", False, False), ("HF generate (batched)", "generate", False, False))
    times: dict[str, list[float]] = {name: [] for name, *_ in engines}
    counts: dict[str, int] = {}
    samples: dict[str, list] = {}
    reuse: dict[str, str] = {}
    prompt_s: dict[str, list[tuple[float, float]]] = {}
    for _ in range(args.rounds):  # engines interleaved, the fastest round of each kept: load noise only adds
        for name, mode, single, fused in engines:
            dt, counts[name] = replay(name, mode, single, fused)
            times[name].append(dt)
    best = {name: min(t) for name, t in times.items()}
    anchor = best["HF generate (batched)"]
    passes = {name: f"{min(v)[1]:.2f}" for name, v in prompt_s.items()}  # of the fastest round
    rows = [[name, f"{best[name]:.2f}", counts[name], f"{counts[name] / best[name]:.0f}",
             f"{prompts / best[name]:.1f}", f"{anchor / best[name]:.2f}x", passes.get(name, "-"),
             reuse.get(name, "-")] for name in best]
    print(f"policy {path}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; workload: "
          f"{args.episodes} Best-of-{args.n} episodes of {args.task} ({len(workload)} lockstep calls, {prompts} "
          f"prompts), max_new_tokens={args.max_new_tokens}, torch threads={args.threads}, best of {args.rounds} "
          "interleaved rounds")
    print(format_table(["engine", "seconds", "tokens", "tokens/s", "turns/s", "vs HF generate",
                        "prompt passes s", "prompt tokens reused"], rows))
    same = samples["fused batched (default)"] == samples["module batched (fused=False)"]
    print(f"fused and module decoding sampled the same tokens on every prompt: {'yes' if same else 'NO'}")
    # the same prompts for every engine: the speed-ups are ratios of wall times on the workload
    fast = best["fused batched (default)"]
    print(f"fused batched vs one prompt at a time: {best['fused one at a time'] / fast:.1f}x; "
          f"vs HF generate: {anchor / fast:.1f}x; vs the module decoding: {best['module batched (fused=False)'] / fast:.1f}x")
    # what is left once the prompts are resumed: one decoding forward pass per generated token
    past = max(len(tok(p, add_special_tokens=False)["input_ids"]) for call in workload for p in call)
    cost = {b: step_costs(model, b, past) for b in (1, args.n)}
    rate = matmul_gflops()
    floor = {b: 1000 * step_flops(model, b, past) / (rate * 1e9) for b in cost}
    print(format_table(["decoding forward pass", "fused step ms", "HF module forward ms", "module / fused",
                        "arithmetic floor ms", "fused / floor"],
                       [[f"batch {b}, {past}-token cache", f"{f:.3f}", f"{m:.3f}", f"{m / f:.1f}x", f"{floor[b]:.3f}",
                         f"{f / floor[b]:.1f}x"] for b, (f, m) in cost.items()]))
    print(f"(arithmetic floor: {step_flops(model, 1, past) / 1e6:.2f} MFLOP a row at {rate:.1f} GFLOP/s, "
          "a 512x512 float32 matmul on this machine now)")
    if args.compile:
        for b in (1, args.n):
            compile_s, ms, same = compiled_step_ms(model, b, past)
            eager = step_costs(model, b, past, rounds=3)[0]
            print(f"torch.compile of the fused step, batch {b}: {ms:.3f} ms vs eager {eager:.3f} ms "
                  f"({compile_s:.0f} s to compile; logits {'bit-identical' if same else 'differ in the last bits'})")


if __name__ == "__main__":
    main()
