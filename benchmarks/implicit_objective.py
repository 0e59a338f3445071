"""Which loss for the implicit RM: PRIME's outcome cross-entropy or DPO's within-group Bradley-Terry? (issue 21)

Usage::

    python benchmarks/implicit_objective.py runs/demo_idle [--folds 3] [--losses ce,bt]
    python benchmarks/implicit_objective.py runs/demo_idle --losses "bt;bt:label_smoothing=0.1;bt:margin=1"

Train data only: the run's sampled held-in TRAIN groups (the final states the train-rm stage fits the implicit
RM on), in ``--folds`` folds of task ids. For each fold and loss, the run's SFT policy is fitted as the implicit
RM (``beta log pi / pi_ref``, the SFT policy frozen as the reference) on the other folds' groups with the
pipeline's own code and budget (``rm_stage.train_implicit``, ``implicit_steps``), then scores the held-out
groups. Printed per loss: the task-mean within-group pairwise accuracy (``group_ranking_metrics``, as the RM's
own CV; ties count half), and the progress
points of its pick (ties share a pick) minus one sample (the group's mean) and minus the heuristic's pick,
mean over groups with a 95% bootstrap CI; then each loss against the first, paired. A loss may carry
:class:`~agentrm_gym.rm.trainer.ImplicitConfig` fields (``bt:label_smoothing=0.1``, ``bt:margin=1``: Secrets of
RLHF II's remedies for noisy preferences; the margin is adaptive, times the pair's outcome difference); with
any, separate the losses by ``;``. Scores are kept in ``RUN/analysis/implicit_objective.json`` and reused;
``--fresh`` refits.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from agentrm_gym.rm.heuristic import repeated_actions
from agentrm_gym.rm.pooled import group_ranking_metrics
from agentrm_gym.rm.selector import final_groups, gain_over_heuristic
from agentrm_gym.train.analyses import _run
from agentrm_gym.train.table import top_candidates


def _picks(scores: np.ndarray, values: np.ndarray, members: list[list[int]]) -> np.ndarray:
    """Per group, the value of the top-scored candidate (ties share the pick, as Table 1) minus the group's mean."""
    return np.array([values[m][top_candidates(scores[m])].mean() - values[m].mean() for m in members])


def _ci(diffs: np.ndarray, seed: int = 0) -> str:
    boot = np.random.default_rng(seed).integers(0, len(diffs), size=(2000, len(diffs)))
    lo, hi = np.percentile(diffs[boot].mean(axis=1), [2.5, 97.5])
    return f"{100 * diffs.mean():+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="?", default="runs/demo", help="a finished run (its sft and extract stages)")
    ap.add_argument("--folds", type=int, default=3, help="folds of task ids")
    ap.add_argument("--losses", default="ce,bt", help="comma-separated implicit_loss values")
    ap.add_argument("--fresh", action="store_true", help="refit even where scores are kept")
    args = ap.parse_args(argv)
    root = Path(args.run)
    if not (root / "extract").exists() or not (root / "sft").exists():
        print(f"skipped: {root} has no extract or sft stage; run `make demo` (or give a finished run) first")
        return
    if args.folds < 2:
        raise SystemExit("--folds must be at least 2")
    from agentrm_gym.train.rm_stage import train_implicit

    cfg, pairs, _ = _run(root)
    finals = [p for p in pairs if p.get("source") == "group"]
    ids = sorted({(p["task"], str(p["task_id"])) for p in finals})
    order = np.random.default_rng(0).permutation(len(ids))
    fold_of = {ids[j]: k % args.folds for k, j in enumerate(order)}
    folds = np.array([fold_of[(p["task"], str(p["task_id"]))] for p in finals])
    values = np.array([p["value"] for p in finals], dtype=np.float64)
    repeats = np.array([repeated_actions(p["state"]) for p in finals], dtype=np.float64)
    tasks = np.array([p["task"] for p in finals])
    groups = [p["group"] for p in finals]
    members = final_groups(groups, ["group"] * len(finals))
    kept_path = root / "analysis" / "implicit_objective.json"
    kept = {} if args.fresh or not kept_path.exists() else json.loads(kept_path.read_text(encoding="utf-8"))
    print(f"{len(finals)} final states in {len(members)} groups of {len(ids)} task ids, {args.folds} folds; "
          f"implicit_steps {cfg.implicit_steps}")
    print("| loss | task-mean pairwise acc. | vs one sample (points) | vs heuristic (points) | "
          + " | ".join(f"{t} vs heuristic" for t in sorted(set(tasks))) + " | fit s |")
    print("|---|---|---|---|" + "---|" * len(set(tasks)) + "---|")
    picks_of: dict[str, np.ndarray] = {}
    specs = args.losses.split(";") if ";" in args.losses or ":" in args.losses else args.losses.split(",")
    for loss in [x.strip() for x in specs if x.strip()]:
        name, _, fields = loss.partition(":")
        overrides = {k.strip(): float(v) for k, _, v in (f.partition("=") for f in fields.split(",") if f.strip())}
        key = f"{loss}:{args.folds}:{cfg.implicit_steps}"
        if key not in kept or len(kept[key]["scores"]) != len(finals):
            scores, seconds = np.zeros(len(finals)), 0.0
            for k in range(args.folds):
                train = [p for p, f in zip(finals, folds, strict=True) if f != k]
                started = time.time()
                with tempfile.TemporaryDirectory() as tmp:
                    from agentrm_gym.rm.loading import load_reward_model

                    train_implicit(cfg.replace(implicit_loss=name), root, train, out=Path(tmp) / "rm", **overrides)
                    rm = load_reward_model(Path(tmp) / "rm")
                    rows = np.flatnonzero(folds == k)
                    scores[rows] = rm.score([finals[i]["state"] for i in rows])
                seconds += time.time() - started
            kept[key] = {"scores": scores.tolist(), "seconds": round(seconds, 1)}
            kept_path.parent.mkdir(parents=True, exist_ok=True)
            kept_path.write_text(json.dumps(kept), encoding="utf-8")
        scores = np.array(kept[key]["scores"])
        accuracy = group_ranking_metrics(scores, values, groups, tasks)["task_pairwise_accuracy"]
        picks_of[loss] = _picks(scores, values, members)
        gain = gain_over_heuristic(scores, repeats, values, members)
        by_task = []
        for t in sorted(set(tasks)):
            sub = [m for m in members if tasks[m[0]] == t]
            g = gain_over_heuristic(scores, repeats, values, sub)
            by_task.append(f"{100 * g['mean']:+.1f}" if g["mean"] is not None else "-")
        print(f"| {loss} | {accuracy:.3f} | {_ci(picks_of[loss])} | "
              f"{100 * gain['mean']:+.1f} [{100 * gain['ci'][0]:+.1f}, {100 * gain['ci'][1]:+.1f}] | "
              + " | ".join(by_task) + f" | {kept[key]['seconds']} |")
    print(f"| heuristic (nothing learned) | - | {_ci(_picks(-repeats, values, members))} | 0 |" + " 0 |" * len(set(tasks)) + " - |")
    if len(picks_of) >= 2:  # each loss against the first, paired over the same groups
        first = next(iter(picks_of))
        for loss in list(picks_of)[1:]:
            print(f"{loss} - {first}, paired over the {len(members)} groups: "
                  f"{_ci(picks_of[loss] - picks_of[first])} points")


if __name__ == "__main__":
    main()
