"""How far does the RM's learned part carry? ALFWorld's groups ranked from four distances (issue 21, train data).

Usage::

    python benchmarks/rm_transfer_distance.py runs/demo_idle

The run's RM head (its encoder's embedding + the four trajectory statistics, ridge on group-centred values at
the card's alpha), and the encoder and the statistics alone, each pick among ALFWorld's sampled TRAIN groups
(the final states Best-of-N ranks) against the heuristic's pick, fitted on three training sets:

* ``in-task``: every held-in task's pairs but those of the held-out fold's ALFWorld task ids (5 folds of ids);
* ``floor plans left out``: the same with 5 folds of ALFRED floor plans, so the held-out ids' rooms are never
  seen (ALFWorld's test split lives on four floor plans its train split never uses);
* ``task type left out``: every held-in pair but ALFWorld's pairs of the same task type (pick, clean, heat,
  cool, examine, pick two: read off the goal), so ALFWorld's other types are seen, this one never;
* ``task left out``: WebShop's and ScienceWorld's pairs only (the leave-one-task-out fold the selector uses).

Progress points of the pick minus the heuristic's pick (ties share a pick), mean over groups with a 95%
bootstrap CI. Then the train-rm stage's choice of the selector for its training tasks (``selector_seen``: ridge
or heuristic-ties, over all three tasks' groups), on its task-id folds and again with ALFWorld's folds by floor
plan, as its test split is. Embeddings are cached in the run's ``analysis/labels_embeddings.npz``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.rm.format import RMFormat
from agentrm_gym.rm.heuristic import repeated_actions
from agentrm_gym.rm.pooled import PooledConfig, centre_by_group, cv_folds, fit_ridge, text_stats
from agentrm_gym.rm.selector import choose_selector, final_groups, gain_over_heuristic
from agentrm_gym.train.analyses import _run
from agentrm_gym.train.analyses_labels import _embeddings

#: ALFWorld's task types, by the first pattern its goal matches.
TYPES = (("pick two", r"\btwo\b"), ("examine", r"^(examine|look at)"), ("clean", r"\bclean\b"),
         ("heat", r"\b(hot|heat)\b"), ("cool", r"\b(cool|cold)\b"), ("pick", r""))


def task_type(goal: str) -> str:
    """The ALFWorld task type of a goal (:data:`TYPES`)."""
    return next(name for name, pattern in TYPES if re.search(pattern, goal.lower()))


def open_run(argv: list[str] | None, doc: str, what: str) -> tuple[Path, Any, list[dict[str, Any]], dict[str, Any]] | None:
    """``(run, config, pairs, RM card)`` of the finished run named on the command line (``what`` it must be), or
    ``None`` after saying why it is skipped."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("run", nargs="?", default="runs/demo", help=f"a finished run {what}")
    root = Path(ap.parse_args(argv).run)
    if not (root / "rm" / "agentrm_rm.json").exists():  # `make bench` runs every script without arguments
        print(f"skipped: {root / 'rm'} not found; run `make demo` (or give a finished run) first")
        return None
    return (root, *_run(root))


def main(argv: list[str] | None = None) -> None:
    opened = open_run(argv, __doc__, "whose held-in tasks include ALFWorld")
    if opened is None:
        return
    root, cfg, pairs, card = opened
    alfworld = np.array([p["task"] == "ALFWorld" for p in pairs])
    if not alfworld.any() or len({p["task"] for p in pairs}) < 2:
        print(f"skipped: {root}'s pairs hold no ALFWorld, or ALFWorld alone")
        return
    fmt = RMFormat(style=cfg.rm_text)
    alpha = float(card.get("metrics", {}).get("alpha") or 10.0)
    texts = [fmt.text(p["state"]) for p in pairs]
    e = _embeddings(root, cfg, card, texts)
    s = np.array([text_stats(t, fmt.obs_chars) for t in texts])
    values = np.array([p["value"] for p in pairs])
    y = centre_by_group(values, [p["group"] for p in pairs])
    repeats = np.array([repeated_actions(p["state"]) for p in pairs], dtype=np.float64)
    members = [m for m in final_groups([p["group"] for p in pairs], [p["source"] for p in pairs]) if alfworld[m[0]]]
    types = np.array([task_type(p["state"].goal) if a else "" for p, a in zip(pairs, alfworld, strict=True)])
    id_folds = cv_folds(pairs, sorted({(p["task"], p["task_id"]) for p in pairs}), PooledConfig(cv="task_id"))
    from agentrm_gym.envs.alfworld.scenes import scene_for

    plans = {p["task_id"]: scene_for("train", int(p["task_id"].split("-")[1])).floor_plan
             for p, a in zip(pairs, alfworld, strict=True) if a}
    order = np.random.default_rng(cfg.seed).permutation(sorted(set(plans.values())))
    fold_of_plan = {int(plan): k % 5 for k, plan in enumerate(order)}
    plan_folds = np.array([fold_of_plan[plans[p["task_id"]]] if a else -1 for p, a in zip(pairs, alfworld, strict=True)])
    schemes = {  # held-out part -> its training rows, per scheme
        "in-task": [(alfworld & (id_folds == k), id_folds != k) for k in range(id_folds.max() + 1)],
        "floor plans left out": [(alfworld & (plan_folds == k), plan_folds != k) for k in range(5)],
        "task type left out": [(types == t, types != t) for t in sorted(set(types) - {""})],
        "task left out": [(alfworld, ~alfworld)],
    }
    per_type = Counter(str(types[m[0]]) for m in members)
    print(f"{len(members)} ALFWorld groups ({', '.join(f'{t} {n}' for t, n in sorted(per_type.items()))}); "
          f"alpha {alpha}")
    print(f"{len(set(plans.values()))} floor plans under ALFWorld's train ids")
    print(f"{'features':<22} " + " ".join(f"{name:>24}" for name in schemes))
    for label, x in (("encoder + statistics", np.hstack([e, s])), ("encoder only", e), ("statistics only", s)):
        cells = []
        for parts in schemes.values():
            pred = np.zeros(len(pairs))
            for held, train in parts:
                w, b = fit_ridge(x[train], y[train], alpha)
                pred[held] = x[held] @ w + b
            g = gain_over_heuristic(pred, repeats, values, members, cfg.seed)
            cells.append(f"{100 * g['mean']:+.1f} [{100 * g['ci'][0]:+.1f}, {100 * g['ci'][1]:+.1f}]")
        print(f"{label:<22} " + " ".join(f"{c:>24}" for c in cells))
    # the train-rm stage's choice for the training tasks, then with ALFWorld's folds by floor plan (its test split's shift)
    x = np.hstack([e, s])
    by_id = np.zeros(len(pairs))
    by_plan = np.zeros(len(pairs))
    for folds, out, rows in ((id_folds, by_id, np.ones(len(pairs), bool)), (id_folds, by_plan, ~alfworld),
                             (plan_folds, by_plan, alfworld)):
        for k in range(folds.max() + 1):
            w, b = fit_ridge(x[folds != k], y[folds != k], alpha)
            held = rows & (folds == k)
            out[held] = x[held] @ w + b
    for name, pred in (("task-id folds (the train-rm stage's)", by_id),
                       ("ALFWorld by floor plan, the others by task id", by_plan)):
        sel = choose_selector(pred, repeats, values, [p["group"] for p in pairs], [p["source"] for p in pairs],
                              seed=cfg.seed)
        print(f"selector for the training tasks, {name}: " + ", ".join(
            f"{k} {100 * sel[k]['mean']:+.1f} [{100 * sel[k]['ci'][0]:+.1f}, {100 * sel[k]['ci'][1]:+.1f}]"
            for k in ("ridge", "heuristic-ties")) + f" -> {sel['chosen']}")

if __name__ == "__main__":
    main()
