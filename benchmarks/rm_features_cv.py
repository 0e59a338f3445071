"""What the pooled RM reads, chosen by leave-one-task-out CV on a run's held-in TRAIN pairs (no test data).

Trains :func:`agentrm_gym.rm.pooled.train_pooled_rm` on ``RUN/extract/pairs.jsonl`` with each encoder
(``minilm``: the packaged sentence encoder; ``policy``: the run's SFT policy, its hidden states) with and
without the trajectory statistics (:func:`agentrm_gym.rm.pooled.text_stats`). Every row chooses its ridge
strength by the same leave-one-task-out CV (the pipeline's ``rm_cv=task``) and reports, on the held-out
task folds, the within-group pairwise accuracy (the mean over tasks, the pipeline's criterion, and
pooled over all pairs) and the offline Best-of-N lift (the selected candidate's value minus its group's
mean, in points) per task: how well a head fitted on two held-in tasks ranks the groups of the third.

    python benchmarks/rm_features_cv.py [RUN (default runs/demo)]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from agentrm_gym.cli.envs import format_table
from agentrm_gym.rm.format import RMFormat
from agentrm_gym.rm.pooled import train_pooled_rm
from agentrm_gym.train.config import load_config
from agentrm_gym.train.extract import load_pairs
from agentrm_gym.train.rm_stage import pooled_candidates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", nargs="?", default="runs/demo", help="a pipeline run with extract/pairs.jsonl")
    args = ap.parse_args()
    if not Path(args.run, "extract", "pairs.jsonl").exists():
        print(f"no {args.run}/extract/pairs.jsonl: run `make demo` first (or pass a run directory)")
        return
    cfg = load_config(f"{args.run}/config.json")
    records = load_pairs(args.run)
    # the encoders the demo preset chooses from, each cross-validated alone to show its per-task lifts
    candidates = pooled_candidates(cfg.replace(rm_candidates=["minilm", "minilm+stats", "policy", "policy+stats"],
                                               rm_cv="task"), args.run)
    rows = []
    for config in candidates:
        started = time.time()
        rm = train_pooled_rm(records, config, out_dir=tempfile.mkdtemp(prefix="features-cv-"),
                             fmt=RMFormat(style=cfg.rm_text))
        m = rm.card()["metrics"]
        per_task = ", ".join(f"{t} {v['pairwise_accuracy']:.3f} / {100 * v['bon_lift']:+.1f}"
                             for t, v in m["per_task"].items())
        name = "minilm" if config.backbone == "minilm" else "policy"
        rows.append([name, "yes" if config.stats else "no", m["alpha"], f"{m['task_pairwise_accuracy']:.3f}",
                     f"{m['pairwise_accuracy']:.3f}", f"{100 * m['bon_lift']:+.2f}", per_task,
                     f"{time.time() - started:.0f}"])
    print(f"{len(records)} held-in train states, {len({r['group'] for r in records})} groups; "
          "leave-one-task-out CV")
    print(format_table(["encoder", "statistics", "alpha", "pairwise (task mean)", "pairwise (pooled)",
                        "Best-of-N lift (points)", "per task: pairwise / lift", "seconds"], rows))


if __name__ == "__main__":
    main()
