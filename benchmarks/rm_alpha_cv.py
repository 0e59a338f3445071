"""The pooled RM's ridge strength by cross-validation on a run's held-in TRAIN pairs (no test data).

Trains :func:`agentrm_gym.rm.pooled.train_pooled_rm` on ``RUN/extract/pairs.jsonl`` twice, with the two CV
schemes of ``rm_cv``: ``task`` (leave-one-task-out: how well the RM ranks a group of a held-in task it was
not fitted on, the transfer forecast) and ``task_id`` (folds of task ids: within-task ranking). Prints one
row per alpha (within-group pairwise accuracy on the held-out folds) and the chosen alpha with its offline
Best-of-N lift (the selected candidate's value minus its group's mean, in points) per task.

    python benchmarks/rm_alpha_cv.py [RUN (default runs/demo)] [--alphas 0.003,0.01,...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from agentrm_gym.cli.envs import format_table
from agentrm_gym.rm.format import RMFormat
from agentrm_gym.rm.pooled import PooledConfig, train_pooled_rm
from agentrm_gym.train.config import load_config
from agentrm_gym.train.extract import load_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", nargs="?", default="runs/demo", help="a pipeline run with extract/pairs.jsonl")
    ap.add_argument("--alphas", default="0.003,0.01,0.03,0.1,0.3,1,3,10,30,100")
    args = ap.parse_args()
    if not Path(args.run, "extract", "pairs.jsonl").exists():
        print(f"no {args.run}/extract/pairs.jsonl: run `make demo` first (or pass a run directory)")
        return
    cfg = load_config(f"{args.run}/config.json")
    alphas = [float(a) for a in args.alphas.split(",")]
    records = load_pairs(args.run)
    cards = {}
    for cv in ("task", "task_id"):
        rm = train_pooled_rm(records, PooledConfig(backbone=cfg.rm_backbone, max_length=cfg.rm_max_length, cv=cv,
                                                   alphas=alphas, seed=cfg.seed),
                             out_dir=tempfile.mkdtemp(prefix="alpha-cv-"), fmt=RMFormat(style=cfg.rm_text))
        cards[cv] = rm.card()["metrics"]
    rows = [[a, *(f"{cards[cv]['cv_by_alpha'][str(a)]:.3f}" for cv in cards)] for a in alphas]
    print(format_table(["alpha", "pairwise (task mean), leave-one-task-out", "pairwise (task mean), task-id folds"],
                       rows))
    for cv, m in cards.items():
        lifts = ", ".join(f"{t} {100 * v['bon_lift']:+.1f}" for t, v in m["per_task"].items())
        print(f"{cv}: alpha {m['alpha']}, pairwise {m['task_pairwise_accuracy']:.3f} (task mean), "
              f"{m['pairwise_accuracy']:.3f} (pooled), "
              f"Best-of-N lift {100 * m['bon_lift']:+.1f} points ({lifts})")


if __name__ == "__main__":
    main()
