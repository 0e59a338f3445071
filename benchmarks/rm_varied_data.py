"""Does more varied held-in data help the RM against the heuristic? (issue 21, train data only)

Usage::

    agentrm pipeline explore --out runs/t08 --set temperature=0.8   # a copy of a run's config, expert and sft
    agentrm pipeline extract --out runs/t08
    python benchmarks/rm_varied_data.py runs/demo_idle runs/t08

The base run's RM (its encoder's embedding + the four trajectory statistics, ridge on group-centred values at
the card's alpha) is cross-validated leave-one-task-out over the held-in tasks twice: trained on the base run's
pairs, and on those plus the other run's pairs (groups and trees sampled at another temperature, same train
ids). Both pick among the left-out task's sampled groups *of the base run* (the same groups for every row),
against the heuristic's pick, with a 95% bootstrap CI over groups; also as ``heuristic-ties``. Prints a table.
Embeddings are cached in the base run's ``analysis/labels_embeddings.npz``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from agentrm_gym.rm.format import RMFormat
from agentrm_gym.rm.heuristic import repeated_actions
from agentrm_gym.rm.pooled import centre_by_group, fit_ridge, group_ranking_metrics, text_stats
from agentrm_gym.rm.selector import final_groups, gain_over_heuristic, heuristic_ties
from agentrm_gym.train.analyses import _run
from agentrm_gym.train.analyses_labels import _embeddings
from agentrm_gym.train.extract import load_pairs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base", nargs="?", default="runs/demo", help="the run whose RM and groups are evaluated")
    ap.add_argument("extra", nargs="?", default="runs/t08",
                    help="a run with more pairs of the same held-in tasks (e.g. another temperature)")
    args = ap.parse_args(argv)
    missing = [p for p in (Path(args.base) / "rm", Path(args.extra) / "extract" / "pairs.jsonl") if not p.exists()]
    if missing:  # `make bench` runs every script without arguments
        print(f"skipped: {', '.join(map(str, missing))} not found; make the runs first (module docstring)")
        return
    root = Path(args.base)
    cfg, base, card = _run(root)
    extra = [{**p, "group": f"extra:{p['group']}"} for p in load_pairs(args.extra)]
    records = base + extra
    fmt = RMFormat(style=cfg.rm_text)
    alpha = float(card.get("metrics", {}).get("alpha") or 10.0)
    texts = [fmt.text(r["state"]) for r in records]
    x = np.hstack([_embeddings(root, cfg, card, texts), np.array([text_stats(t, fmt.obs_chars) for t in texts])])
    values = np.array([r["value"] for r in records])
    groups = [r["group"] for r in records]
    y = centre_by_group(values, groups)
    tasks = np.array([r["task"] for r in records])
    is_base = np.arange(len(records)) < len(base)
    repeats = np.array([repeated_actions(r["state"]) for r in records], dtype=np.float64)
    members = final_groups([r["group"] for r in base], [r["source"] for r in base])
    idx = [i for m in members for i in m]
    names = sorted({tasks[m[0]] for m in members})
    print(f"base pairs {len(base)}, extra pairs {len(extra)}; {len(members)} base groups evaluated; alpha {alpha}")
    print(f"{'training data':<28} {'selector':<15} {'task-mean acc.':>14}  vs heuristic (points, 95% CI)")
    for label, use in (("base run", is_base), ("base + extra run", np.ones(len(records), bool))):
        pred = np.zeros(len(records))
        for task in names:
            train = use & (tasks != task)
            w, b = fit_ridge(x[train], y[train], alpha)
            held = is_base & (tasks == task)
            pred[held] = x[held] @ w + b
        acc = group_ranking_metrics(pred[idx], values[idx], [groups[i] for i in idx],
                                    list(tasks[idx]))["task_pairwise_accuracy"]
        centre, scale = float(pred[is_base].mean()), float(pred[is_base].std() or 1.0)
        for sel, score in (("ridge", pred), ("heuristic-ties", heuristic_ties(pred, repeats, centre, scale))):
            g = gain_over_heuristic(score, repeats, values, members, cfg.seed)
            lo, hi = g["ci"]
            print(f"{label:<28} {sel:<15} {acc:>14.3f}  {100 * g['mean']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]")


if __name__ == "__main__":
    main()
