"""Where is the room above "fewer repeated actions", and where does the RM gain or lose it? (issue 21)

Usage::

    python benchmarks/heuristic_room.py runs/demo_idle [--test runs/heldin_bt runs/heldout_all]

For every Best-of-N group, the heuristic picks the candidates with the fewest repeated actions (ties share the
pick). The oracle's room above it splits in two: the best candidate *among the heuristic's ties* (what a
tie-breaker can reach) and the best candidate overall, which may repeat more (what only a selector that
overrules the heuristic can reach). A learned selector's pick minus the heuristic's splits the same way: the
part from its picks with the fewest repeats (breaking ties) and the part from picks with more (overruling).
Points of progress, mean over groups; per task and over all groups; beside them the selector's pairwise
accuracy among the heuristic's tied candidates of different progress, and the correlation of the candidates'
step counts with their progress.

* Train: the run's sampled held-in TRAIN groups (``extract/pairs.jsonl``, their final states), ranked by the
  run's RM head (its encoder + the four statistics, ridge on group-centred values at the card's alpha) fitted
  leave-one-task-out, as for a task it never saw. Embeddings are cached in ``analysis/labels_embeddings.npz``.
  First, how many (group, repeat count) cells hold states of different values (what a head for the ties can
  learn from), and the heuristic with the RM head breaking its ties against the same with a head fitted for the
  ties alone (each state's value minus the mean of its group's states with as many repeats), leave-one-task-out.
* ``--test RUN ...``: finished evaluations' saved Best-of-N candidates (``eval/candidates.jsonl``), ranked by
  the scores the explicit RM gave them there (its card's selector), read after every choice was made; with
  ``--scores NAME``, by another RM's saved scores (``eval/scores/NAME.jsonl``); ``--tasks`` keeps some tasks.
  After each, the selector's pick minus the heuristic's as Table 1 pairs them (task means, 95% bootstrap CI).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.rm.heuristic import repeated_actions
from agentrm_gym.rm.selector import room_over_heuristic
from agentrm_gym.trajectory import Trajectory

COLUMNS = ("groups", "tied tops", "heuristic", "oracle", "room in ties", "room outside", "selector - heuristic",
           "from ties", "from overruling", "overrules won / lost", "pairwise acc. in ties",
           "corr. of steps and progress")


def table(rows: Sequence[tuple[str, dict[str, float]]]) -> str:
    """A markdown table of :func:`room_over_heuristic` rows ``(task, row)``, per task and over all groups."""
    lines = ["| task | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for task in [*sorted({t for t, _ in rows}), "all"]:
        sub = [r for t, r in rows if task in ("all", t)]
        mean = {k: 100 * float(np.mean([r[k] for r in sub])) for k in sub[0] if not k.startswith("_")}
        won = sum(r["from_overruling"] > 1e-9 for r in sub)
        lost = sum(r["from_overruling"] < -1e-9 for r in sub)
        cells = [str(len(sub)), f"{mean['tied'] / 100 * len(sub):.0f}",
                 *(f"{mean[k]:.1f}" for k in ("heuristic", "oracle", "in_ties", "outside")),
                 f"{mean['from_ties'] + mean['from_overruling']:+.1f}", f"{mean['from_ties']:+.1f}",
                 f"{mean['from_overruling']:+.1f}", f"{won} / {lost}", accuracy(sub), correlation(sub)]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def accuracy(rows: Sequence[dict[str, float]]) -> str:
    """The selector's pairwise accuracy among the heuristic's ties, pooled over ``rows``' pairs, and their count."""
    pairs = sum(r["tie_pairs"] for r in rows)
    return f"{sum(r['tie_correct'] for r in rows) / pairs:.2f} ({pairs:.0f})" if pairs else "-"


def correlation(rows: Sequence[dict[str, Any]]) -> str:
    """The correlation of the candidates' step counts with their progress, pooled over ``rows``' groups ("-" when
    either is constant)."""
    steps, values = (np.concatenate([r[k] for r in rows]).astype(np.float64) for k in ("_steps", "_values"))
    return f"{np.corrcoef(steps, values)[0, 1]:+.2f}" if steps.std() > 0 and values.std() > 0 else "-"


def train_rows(root: Path) -> list[tuple[str, dict[str, float]]]:
    """:func:`room_over_heuristic` on the run's sampled train groups, ranked by its RM head fitted leave-one-task-out;
    then prints the heuristic broken by that head against one fitted for the ties alone (values centred within
    each group's states of one repeat count), both against the heuristic's pick with a 95% bootstrap CI."""
    from agentrm_gym.rm.format import RMFormat
    from agentrm_gym.rm.pooled import centre_by_group, cv_predictions, text_stats
    from agentrm_gym.rm.selector import final_groups, gain_over_heuristic, heuristic_ties
    from agentrm_gym.train.analyses import _run
    from agentrm_gym.train.analyses_labels import _embeddings

    cfg, pairs, card = _run(root)
    fmt = RMFormat(style=cfg.rm_text)
    texts = [fmt.text(p["state"]) for p in pairs]
    x = np.hstack([_embeddings(root, cfg, card, texts), np.array([text_stats(t, fmt.obs_chars) for t in texts])])
    values = np.array([p["value"] for p in pairs], dtype=np.float64)
    groups = [p["group"] for p in pairs]
    tasks = np.array([p["task"] for p in pairs])
    repeats = np.array([repeated_actions(p["state"]) for p in pairs], dtype=np.float64)
    alpha = float(card.get("metrics", {}).get("alpha") or 10.0)
    members = final_groups(groups, [p["source"] for p in pairs])

    folds = np.unique(tasks, return_inverse=True)[1]  # leave one task out

    def loto(y: np.ndarray) -> np.ndarray:
        return cv_predictions(x, y, folds, alpha)

    cells: dict[tuple[str, float], list[float]] = {}
    for g, r, v in zip(groups, repeats, values, strict=True):
        cells.setdefault((g, r), []).append(v)
    print(f"- (group, repeat count) cells with states of different values: "
          f"{sum(np.ptp(v) > 0 for v in cells.values())} of {len(cells)}")
    predicted = loto(centre_by_group(values, groups))
    for what, head in (("the RM head", predicted),
                       ("a head for the ties", loto(centre_by_group(values, list(zip(groups, repeats, strict=True)))))):
        g = gain_over_heuristic(heuristic_ties(head, repeats, float(head.mean()), float(head.std() or 1.0)), repeats,
                                values, members, cfg.seed)
        print(f"- the heuristic, {what} breaking its ties: {100 * g['mean']:+.2f} "
              f"[{100 * g['ci'][0]:+.2f}, {100 * g['ci'][1]:+.2f}] points over the heuristic, {g['groups']} groups")
    print()
    steps = np.array([len(p["state"].steps) for p in pairs], dtype=np.float64)
    return [(str(tasks[m[0]]), {**room_over_heuristic(predicted[m], repeats[m], values[m]), "_steps": steps[m],
                                "_values": values[m]}) for m in map(np.array, members)]


def test_rows(run: Path, scores: str = "") -> list[tuple[str, dict[str, float]]]:
    """:func:`room_over_heuristic` on a finished evaluation's Best-of-N candidates, ranked by their saved explicit
    scores, or by ``eval/scores/<scores>.jsonl`` (an RM of ``eval_rms`` or of ``agentrm rm rescore --name``)."""
    saved = {}
    if scores:
        with open(run / "eval" / "scores" / f"{scores}.jsonl", encoding="utf-8") as f:
            saved = {(r["task"], str(r["task_id"])): r["scores"] for r in map(json.loads, f)}
    rows = []
    with open(run / "eval" / "candidates.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            cands = rec["candidates"]
            ranked = saved.get((rec["task"], str(rec["task_id"]))) if scores else [c.get("score") for c in cands]
            if len(cands) < 2 or ranked is None or len(ranked) != len(cands) or None in ranked:
                continue
            states = [Trajectory.from_dict(c["trajectory"]).state() for c in cands]
            repeats = np.array([repeated_actions(st) for st in states], dtype=np.float64)
            values = np.array([c["progress"] for c in cands], dtype=np.float64)
            room = room_over_heuristic(np.array(ranked, dtype=np.float64), repeats, values)
            rows.append((rec["task"], {**room, "_steps": np.array([len(st.steps) for st in states]), "_values": values,
                                       "_id": str(rec["task_id"])}))
    return rows


def versus_heuristic(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """The selector's pick minus the heuristic's over ``rows``, as Table 1 pairs them: the mean of the tasks' means,
    95% bootstrap CI with episodes resampled within each task."""
    from agentrm_gym.train.table import paired_gain

    picked = {(t, r["_id"]): (0.0, r["heuristic"] + r["from_ties"] + r["from_overruling"]) for t, r in rows}
    heuristic = {(t, r["_id"]): (0.0, r["heuristic"]) for t, r in rows}
    g = paired_gain(picked, heuristic, sorted({t for t, _ in rows}), [])["all_progress_rate"]
    return f"{g['mean']:+.1f} [{g['lo']:+.1f}, {g['hi']:+.1f}] points over {g['episodes']} episodes"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="?", default="runs/demo", help="a finished run (its extract and rm stages)")
    ap.add_argument("--test", nargs="*", default=[], help="finished evaluations whose saved candidates to read")
    ap.add_argument("--tasks", default="", help="comma-separated tasks to keep in the test tables (default: all)")
    ap.add_argument("--scores", default="", help="rank the test candidates by eval/scores/NAME.jsonl, not the "
                                                 "explicit RM's saved scores")
    args = ap.parse_args(argv)
    root = Path(args.run)
    if not (root / "rm" / "agentrm_rm.json").exists():  # `make bench` runs every script without arguments
        print(f"skipped: {root / 'rm'} not found; run `make demo` (or give a finished run) first")
        return
    for run in map(Path, args.test):
        missing = run / "eval" / ("scores/" + args.scores + ".jsonl" if args.scores else "candidates.jsonl")
        if not missing.is_file() or not (run / "eval" / "candidates.jsonl").is_file():
            raise SystemExit(f"{missing} not found: give a run whose evaluate stage saved its candidates"
                             + (" and `agentrm rm rescore RUN --rm RM --name NAME` saved those scores" if args.scores
                                else ""))
    print(f"## Train: {root}'s sampled held-in train groups, the RM head fitted leave-one-task-out\n")
    print(table(train_rows(root)))
    for run in map(Path, args.test):
        ranked_by = f"eval/scores/{args.scores}.jsonl" if args.scores else "the explicit RM's saved scores"
        print(f"\n## Test: {run}'s Best-of-N candidates, {ranked_by}\n")
        keep = {t.strip() for t in args.tasks.split(",") if t.strip()}
        rows = [(t, r) for t, r in test_rows(run, args.scores) if not keep or t in keep]
        print(table(rows))
        print(f"\nThe selector vs the heuristic, task-mean: {versus_heuristic(rows)}")


if __name__ == "__main__":
    main()
