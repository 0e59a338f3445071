"""The pooled RM's learning curve on a run's held-in TRAIN pairs: would more sampled groups help?

Encodes ``RUN/extract/pairs.jsonl`` once with one encoder (``--backbone``: ``minilm``, ``policy`` for the
run's SFT policy, or a model directory; ``--stats`` appends the trajectory statistics), then, for each
fraction of the groups, fits the ridge head on that fraction of the groups of two held-in tasks and
scores every group of the third (leave-one-task-out, the pipeline's ``rm_cv=task``), ``--repeats``
random subsets a fraction. Prints the within-group pairwise accuracy and offline Best-of-N lift (points)
on the left-out tasks at the best alpha of the grid. A curve still rising at 100% says the RM is
data-limited. No test data is read.

    python benchmarks/rm_learning_curve.py [RUN (default runs/demo)] [--backbone minilm] [--stats]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from agentrm_gym.cli.envs import format_table
from agentrm_gym.rm.format import RMFormat
from agentrm_gym.rm.pooled import (
    PooledValueRewardModel,
    centre_by_group,
    fit_ridge,
    group_ranking_metrics,
    load_encoder,
)
from agentrm_gym.train.config import load_config
from agentrm_gym.train.extract import load_pairs
from agentrm_gym.train.rm_stage import rm_backbone


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", nargs="?", default="runs/demo", help="a pipeline run with extract/pairs.jsonl")
    ap.add_argument("--backbone", default="minilm", help="minilm | policy | a model directory")
    ap.add_argument("--stats", action="store_true", help="append the trajectory statistics")
    ap.add_argument("--fractions", default="0.25,0.5,0.75,1.0")
    ap.add_argument("--repeats", type=int, default=8)
    args = ap.parse_args()
    if not Path(args.run, "extract", "pairs.jsonl").exists():
        print(f"no {args.run}/extract/pairs.jsonl: run `make demo` first (or pass a run directory)")
        return
    cfg = load_config(f"{args.run}/config.json")
    records = load_pairs(args.run)
    encoder, tok = load_encoder(rm_backbone(cfg, args.run, args.backbone))
    rm = PooledValueRewardModel(encoder, tok, np.zeros(1), 0.0, RMFormat(style=cfg.rm_text), cfg.rm_max_length,
                                stats=args.stats)
    x = rm.features([rm.text(r["state"]) for r in records], progress=True)
    values = np.array([r["value"] for r in records])
    groups = np.array([r["group"] for r in records])
    tasks = np.array([r["task"] for r in records])
    y = centre_by_group(values, list(groups))
    rng = np.random.default_rng(cfg.seed)
    unique = np.unique(groups)
    rows = []
    for frac in (float(f) for f in args.fractions.split(",")):
        per_alpha: dict[float, list[tuple[float, float]]] = {a: [] for a in cfg.rm_alphas}
        for _ in range(args.repeats if frac < 1 else 1):
            kept = np.isin(groups, rng.choice(unique, max(1, int(round(frac * len(unique)))), replace=False))
            for alpha in cfg.rm_alphas:
                pred = np.zeros(len(records))
                for task in np.unique(tasks):
                    train, held = kept & (tasks != task), tasks == task
                    w, b = fit_ridge(x[train], y[train], alpha)
                    pred[held] = x[held] @ w + b
                m = group_ranking_metrics(pred, values, list(groups), list(tasks))
                per_alpha[alpha].append((m["task_pairwise_accuracy"], m["bon_lift"]))
        best = max(cfg.rm_alphas, key=lambda a: np.mean([p for p, _ in per_alpha[a]]))
        acc, lift = np.mean(per_alpha[best], axis=0)
        rows.append([f"{100 * frac:.0f}%", int(round(frac * len(unique))), best, f"{acc:.3f}", f"{100 * lift:+.2f}"])
    print(f"{len(records)} held-in train states in {len(unique)} groups; encoder {args.backbone}"
          f"{' + statistics' if args.stats else ''}; leave-one-task-out")
    print(format_table(["groups used", "groups", "alpha", "pairwise (task mean)", "Best-of-N lift (points)"], rows))


if __name__ == "__main__":
    main()
