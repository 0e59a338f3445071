"""Reward-model scoring throughput: states/s unbatched vs batched, uncached vs cached.

Run: ``.venv/bin/python benchmarks/rm_throughput.py [--kind value|pooled] [--backbone tiny|minilm] [--states 256]``.
``--kind pooled`` measures the pooled RM (a frozen mean-pooled encoder + the trajectory statistics + a linear
head, compact RM text); ``--backbone RUN/sft/policy`` is the demo's encoder (the run's SFT policy),
``--backbone minilm`` the packaged sentence encoder.
Batches are length-bucketed (the RM sorts the texts it must score by length before cutting batches).
Ends with ``batched/unbatched speed-up: X.Xx`` (cache off, CPU time).
The states are Maze states from epsilon-greedy oracle rollouts (histories of 0-50 turns). Throughput does not
depend on training, so the model is untrained: the tiny from-scratch BERT (2 layers, 64 wide) or the
pretrained all-MiniLM-L6-v2 with a fresh head. Rows: one state per call with the cache off; batches with
the cache off; the same batches again with the cache warm (what search pays to re-score prefixes). Wall
time on a shared CPU is inflated; the process CPU time and the load average are printed beside it.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from agentrm_gym.rm import RMFormat
from agentrm_gym.rm.metrics import oracle_value_samples
from agentrm_gym.rm.value import build_value_model


def timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", default="value", help="value (sequence classifier) | pooled (frozen encoder + head)")
    ap.add_argument("--backbone", default="tiny", help="tiny | minilm | a model directory")
    ap.add_argument("--states", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    samples = oracle_value_samples("agentrm/Maze-v0", episodes=80, epsilon=0.4, split="test", progress_bar=False)
    rng = np.random.default_rng(0)
    states = [samples[i][0] for i in rng.choice(len(samples), size=min(args.states, len(samples)), replace=False)]
    if args.kind == "pooled":
        from agentrm_gym.rm.backbones import resolve_backbone
        from agentrm_gym.rm.pooled import STAT_NAMES, PooledValueRewardModel, load_encoder

        path = "minilm" if args.backbone == "tiny" else args.backbone
        encoder, tokenizer = load_encoder(path)  # a policy directory (GPT-2) gets a pad token
        rm = PooledValueRewardModel(encoder, tokenizer, np.zeros(encoder.config.hidden_size + len(STAT_NAMES)),
                                    fmt=RMFormat(style="compact"), max_length=args.max_length,
                                    backbone=resolve_backbone(path), stats=True)
    else:
        fmt = RMFormat()
        rm, _ = build_value_model(args.backbone, [fmt.text(s) for s in states], fmt, args.max_length, seed=0,
                                  tiny_kwargs={"hidden_size": 64, "vocab_size": 1000})
    mean_steps = float(np.mean([len(s.steps) for s in states]))
    rm.score(states[:4])  # warm-up (lazy init, allocator)
    rows = []

    rm.cache_size, rm.batch_size = 0, 1
    rm.clear_cache()
    rm.stats.reset()
    w, c = timed(lambda: [rm.score([s]) for s in states])
    rows.append(("unbatched, no cache", w, c, rm.stats.forward_calls))

    rm.batch_size = args.batch_size
    rm.stats.reset()
    w, c = timed(lambda: rm.score(states))
    rows.append((f"batched ({args.batch_size}), no cache", w, c, rm.stats.forward_calls))

    rm.cache_size = 1_000_000
    rm.clear_cache()
    rm.score(states)
    rm.stats.reset()
    w, c = timed(lambda: rm.score(states))
    rows.append(("batched, cache warm", w, c, rm.stats.forward_calls))
    rm.stats.reset()
    w, c = timed(lambda: [rm.score([s]) for s in states])
    rows.append(("unbatched, cache warm", w, c, rm.stats.forward_calls))

    print(f"backbone={rm.backbone} states={len(states)} mean turns={mean_steps:.1f} max_length={args.max_length} "
          f"threads={args.threads} load={os.getloadavg()[0]:.1f}")
    print(f"{'mode':<28} {'states/s (wall)':>15} {'states/s (cpu)':>15} {'forward calls':>14}")
    for name, w, c, calls in rows:
        print(f"{name:<28} {len(states) / w:>15.1f} {len(states) / max(c, 1e-9):>15.1f} {calls:>14}")
    print(f"batched/unbatched speed-up: {rows[0][2] / max(rows[1][2], 1e-9):.1f}x")


if __name__ == "__main__":
    main()
