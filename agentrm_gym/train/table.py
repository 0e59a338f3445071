"""Table 1 of a run: per-task success and progress rates per method, and paired gains with bootstrap CIs.

Inputs are per-episode outcomes keyed by ``(task, task_id)`` for each row of the table:

* rows played by a planner (``greedy``, ``bon:N`` with the explicit RM, ``beam:W1xW2``) come from
  ``eval/episodes.jsonl``;
* rows derived from the saved Best-of-N candidates (``eval/candidates.jsonl``) cost no new episode:
  ``sample`` (the candidates' mean: what one sampled trajectory scores in expectation), ``bon:N (<rm>)``
  for every RM that re-scored the candidates (the candidate with the highest score; tied candidates share
  the pick, :func:`top_candidates`), and ``pass@N (oracle)`` (the best candidate by the env's own
  progress: the ceiling of any selector). Baseline RMs (``heuristic``, ``stats-only``, ``encoder-only``)
  are rows of this kind, and the explicit RM's paired gain over each is in the gains table.

Averages follow AgentRM: the mean over tasks of each task's mean (held-in, held-out, all). A gain of row A
over row B is the *paired* difference on the episodes both played; its 95% CI is a percentile bootstrap
that resamples episodes within each task (stratified), so every task keeps its weight. A gain whose CI
contains 0 is within the noise of the measurement and the table marks it so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Outcome = tuple[float, float]  # (success, progress) of one episode
Rows = dict[str, dict[tuple[str, str], Outcome]]
GROUPS = ("held_in", "held_out", "all")
KEYS = (("success_rate", 0), ("progress_rate", 1))


def candidate_rows(candidates: Sequence[Mapping[str, Any]], scores: Mapping[str, Mapping[tuple[str, str], list[float]]],
                   n: int) -> Rows:
    """``sample``, ``bon:N (<rm>)`` for each RM in ``scores`` and ``pass@N (oracle)`` from saved candidates.

    Args:
        candidates: records ``{"task", "task_id", "candidates": [{"success", "progress", ...}]}``.
        scores: RM name -> ``(task, task_id)`` -> one score per candidate.
        n: N, for the row names.
    """
    rows: Rows = {"sample": {}, f"pass@{n} (oracle)": {}}
    for name in scores:
        rows[f"bon:{n} ({name})"] = {}
    for i, rec in enumerate(candidates):
        key = (rec["task"], str(rec.get("task_id", f"#{i}")))
        cands = rec["candidates"]
        if not cands:
            continue
        succ = np.array([float(c["success"]) for c in cands])
        prog = np.array([float(c["progress"]) for c in cands])
        rows["sample"][key] = (float(succ.mean()), float(prog.mean()))
        best = max(range(len(cands)), key=lambda i: (prog[i], succ[i]))
        rows[f"pass@{n} (oracle)"][key] = (float(succ[best]), float(prog[best]))
        for name, by_key in scores.items():
            s = by_key.get(key)
            if s is not None and len(s) == len(cands):
                picks = top_candidates(s)  # ties share the pick: their mean, not the first listed
                rows[f"bon:{n} ({name})"][key] = (float(succ[picks].mean()), float(prog[picks].mean()))
    return rows


def top_candidates(scores: Sequence[float | None]) -> np.ndarray:
    """Indices of the highest scores (all of them when tied; a missing or NaN score ranks lowest).

    A selector with many ties (the "fewer repeated actions" heuristic's integer counts) is credited with the
    mean outcome of its tied picks, what it scores in expectation when it breaks ties at random; taking the
    first listed would credit it with whatever the sampling order put first.
    """
    x = np.array([np.nan if v is None else float(v) for v in scores], dtype=np.float64)
    x = np.where(np.isfinite(x), x, -np.inf)
    return np.flatnonzero(x == x.max())


def episode_rows(records: Sequence[Mapping[str, Any]]) -> Rows:
    """One row per planner method of ``eval/episodes.jsonl``."""
    rows: Rows = {}
    for i, r in enumerate(records):
        key = (r["task"], str(r.get("task_id", f"#{i}")))
        rows.setdefault(r["method"], {})[key] = (float(r["success"]), float(r["progress"]))
    return rows


def _members(tasks: Sequence[str], held_in: Sequence[str], group: str) -> list[str]:
    if group == "held_in":
        return [t for t in tasks if t in held_in]
    if group == "held_out":
        return [t for t in tasks if t not in held_in]
    return list(tasks)


def _pct(xs: Sequence[float]) -> float:
    return 100.0 * float(np.mean(xs)) if len(xs) else float("nan")


def summarize(rows: Rows, tasks: Sequence[str], held_in: Sequence[str]) -> dict[str, Any]:
    """Per-method, per-task success and progress rates (%) and the held-in / held-out / all averages."""
    table: dict[str, Any] = {}
    for method, outcomes in rows.items():
        per_task = {}
        for t in tasks:
            cell = [v for (task, _), v in outcomes.items() if task == t]
            per_task[t] = {"success_rate": _pct([c[0] for c in cell]), "progress_rate": _pct([c[1] for c in cell]),
                           "episodes": len(cell)}
        avg = {}
        for group in GROUPS:
            for key, _ in KEYS:
                vals = [per_task[t][key] for t in _members(tasks, held_in, group) if per_task[t]["episodes"]]
                avg[f"{group}_{key}"] = float(np.mean(vals)) if vals else float("nan")
        table[method] = {"tasks": per_task, "averages": avg}
    return table


def paired_gain(a: Mapping[tuple[str, str], Outcome], b: Mapping[tuple[str, str], Outcome], tasks: Sequence[str],
                held_in: Sequence[str], resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Mean paired difference ``a - b`` (points) per group and metric, with a stratified bootstrap 95% CI."""
    rng = np.random.default_rng(seed)
    diffs: dict[str, np.ndarray] = {}
    for t in tasks:
        keys = sorted(k for k in a if k[0] == t and k in b)
        if keys:
            diffs[t] = 100.0 * np.array([[a[k][i] - b[k][i] for i in (0, 1)] for k in keys])
    out: dict[str, Any] = {}
    for group in GROUPS:
        members = [t for t in _members(tasks, held_in, group) if t in diffs]
        for key, i in KEYS:
            name = f"{group}_{key}"
            if not members:
                out[name] = {"mean": None, "lo": None, "hi": None, "episodes": 0}
                continue
            mean = float(np.mean([diffs[t][:, i].mean() for t in members]))
            boots = np.zeros(resamples)
            for t in members:
                d = diffs[t][:, i]
                boots += d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
            boots /= len(members)
            lo, hi = (float(x) for x in np.percentile(boots, [2.5, 97.5]))
            lo, hi = min(lo, mean), max(hi, mean)  # the bootstrap mean of a constant can differ by rounding
            out[name] = {"mean": mean, "lo": lo, "hi": hi, "episodes": int(sum(len(diffs[t]) for t in members))}
    return out


def gains(rows: Rows, tasks: Sequence[str], held_in: Sequence[str], baselines: Sequence[str] = ("sample", "greedy"),
          resamples: int = 2000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """``gains[row][baseline]``: :func:`paired_gain` of every search row over each baseline present."""
    out: dict[str, dict[str, Any]] = {}
    for method in rows:
        if method in baselines or method.startswith("pass@"):
            continue
        for base in baselines:
            if base in rows:
                out.setdefault(method, {})[base] = paired_gain(rows[method], rows[base], tasks, held_in,
                                                               resamples, seed)
    return out


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"


def format_table(table: Mapping[str, Any], tasks: Sequence[str], held_in: Sequence[str], key: str,
                 notes: Mapping[str, str]) -> str:
    """A Markdown table like AgentRM's Table 1: methods as rows, tasks and averages as columns."""
    cols = [f"{t}{'*' if t in held_in else ''}" for t in tasks] + ["held-in avg", "held-out avg", "avg (all)"]
    lines = ["| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m, row in table.items():
        cells = [_fmt(row["tasks"][t][key]) if t not in notes else "skipped" for t in tasks]
        cells += [_fmt(row["averages"][f"{g}_{key}"]) for g in GROUPS]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_gains(gain_table: Mapping[str, Mapping[str, Any]], key: str) -> str:
    """Paired gains with 95% CIs; ``(noise)`` where the CI contains 0."""
    def cell(g: Mapping[str, Any]) -> str:
        if g.get("mean") is None:
            return "n/a"
        noise = " (noise)" if g["lo"] <= 0.0 <= g["hi"] else ""
        return f"{g['mean']:+.1f} [{g['lo']:+.1f}, {g['hi']:+.1f}]{noise}"

    lines = ["| method | vs | held-in | held-out | all | episodes |", "|---|---|---|---|---|---|"]
    for method, by_base in gain_table.items():
        for base, g in by_base.items():
            lines.append(f"| {method} | {base} | " + " | ".join(cell(g[f"{grp}_{key}"]) for grp in GROUPS)
                         + f" | {g[f'all_{key}']['episodes']} |")
    return "\n".join(lines)


def render_markdown(results: Mapping[str, Any], tasks: Sequence[str], held_in: Sequence[str]) -> str:
    """The success and progress tables, the paired gains, the RM quality table and the notes."""
    notes = results.get("notes", {})
    parts = ["## Success rate (%)", "", format_table(results["table"], tasks, held_in, "success_rate", notes), "",
             "## Progress rate (%)", "", format_table(results["table"], tasks, held_in, "progress_rate", notes), "",
             "`*` held-in (the RM's training tasks). `sample`: the mean of the Best-of-N candidates (one sampled "
             "trajectory); `bon:N (rm)`: the candidate that RM scores highest; `pass@N (oracle)`: the best candidate "
             "by the env's own progress (an upper bound on any selector). Averages are means over tasks.", ""]
    gain_table = results.get("gains") or {}
    if gain_table:
        parts += ["## Paired gains, progress rate (points, 95% bootstrap CI over episodes)", "",
                  format_gains(gain_table, "progress_rate"), "",
                  "## Paired gains, success rate (points, 95% bootstrap CI over episodes)", "",
                  format_gains(gain_table, "success_rate"), ""]
    parts += format_baseline_gains(gain_table)
    parts += format_rm_cv(results.get("rm_cv") or {})
    quality = [q for q in results.get("rm_quality", []) if "skipped" not in q]
    if quality:
        parts += ["## RM quality on held-out tasks (RMB metrics, oracle comparison sets)", "",
                  "| task | pairwise acc. | Best-of-N acc. | pairs | sets |", "|---|---|---|---|---|"]
        parts += [f"| {q['task']} | {_fmt_acc(q.get('pairwise_accuracy'))} | {_fmt_acc(q.get('best_of_n_accuracy'))} | "
                  f"{q.get('pairs')} | {q.get('best_of_n_sets')} |" for q in quality]
        parts.append("")
    for task, why in notes.items():
        parts.append(f"- {task}: {why}")
    return "\n".join(parts) + "\n"


#: How the baselines of the CV table are described.
BASELINE_NOTES = {"heuristic": "fewer repeated actions (nothing fitted: its ranking of every pair)",
                  "stats-only": "ridge on the four trajectory statistics alone",
                  "encoder-only": "ridge on the chosen encoder's embedding alone",
                  "ridge": "the explicit RM's value alone (no heuristic first)"}


def format_baseline_gains(gain_table: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per baseline row: the explicit RM's paired progress gain over it (what the learned part adds)."""
    explicit = next((m for m in gain_table if m.startswith("bon:") and m.endswith(" (explicit)")), None)
    if explicit is None:
        return []
    n = explicit.split(" ")[0]
    lines = []
    for name, note in BASELINE_NOTES.items():
        g = gain_table[explicit].get(f"{n} ({name})")
        if not g:
            continue
        cells = []
        for grp, label in zip(GROUPS, ("held-in", "held-out", "all"), strict=True):
            c = g[f"{grp}_progress_rate"]
            if c.get("mean") is not None:
                verdict = "noise" if c["lo"] <= 0.0 <= c["hi"] else ("better" if c["mean"] > 0 else "worse")
                cells.append(f"{label} {c['mean']:+.1f} [{c['lo']:+.1f}, {c['hi']:+.1f}] ({verdict})")
        lines.append(f"- over `{name}` ({note.split(' (')[0]}): " + ", ".join(cells))
    if not lines:
        return []
    return ["## What the learned RM adds over its baselines (progress rate, points, 95% CI)", "",
            f"The explicit RM's Best-of-N pick against each baseline's pick on the same candidates ({n}):", "",
            *lines, ""]


def format_rm_cv(rm_cv: Mapping[str, Any]) -> list[str]:
    """The explicit RM's cross-validation on held-in train pairs: every candidate and baseline (lines)."""
    if not rm_cv:
        return []
    folds = "leave-one-task-out" if rm_cv.get("cv") == "task" else "folds of task ids"
    lines = [f"## The explicit RM's cross-validation on held-in train pairs ({folds}: {rm_cv.get('folds')} folds)",
             "", "| RM | task-mean pairwise acc. | pooled pairwise acc. | Best-of-N lift (value) | alpha |",
             "|---|---|---|---|---|"]
    chosen = rm_cv.get("chosen")
    for name, c in (rm_cv.get("candidates") or {}).items():
        lines.append(f"| {name}{' (chosen)' if name == chosen else ''} | {_fmt_acc(c.get('task_pairwise_accuracy'))} "
                     f"| {_fmt_acc(c.get('pairwise_accuracy'))} | {_fmt_acc(c.get('bon_lift'))} | {c.get('alpha')} |")
    for name, c in (rm_cv.get("baselines") or {}).items():
        lines.append(f"| baseline: {name} | {_fmt_acc(c.get('task_pairwise_accuracy'))} "
                     f"| {_fmt_acc(c.get('pairwise_accuracy'))} | {_fmt_acc(c.get('bon_lift'))} "
                     f"| {'-' if c.get('alpha') is None else c['alpha']} |")
    lines += ["", "Within-group pairwise accuracy (ties 1/2; chance 0.5) of each RM's scores on the held-out folds "
              "of its own training pairs, the task mean being the criterion that chose the RM; Best-of-N lift: "
              "the value of the top-scored state minus its group's mean. Baselines: "
              + "; ".join(f"{k}: {v}" for k, v in BASELINE_NOTES.items() if k in (rm_cv.get("baselines") or {}))
              + ". Their Best-of-N rows above are paired with the explicit RM on the same candidates.", ""]
    return lines + format_selectors(rm_cv.get("selectors") or {})


def format_selectors(selectors: Mapping[str, Any]) -> list[str]:
    """How the explicit RM ranks (its card's ``metrics.selector`` / ``selector_seen``): which selector on which
    tasks, and each selector's pick against the heuristic's on its held-out folds (lines; none without them)."""
    def gains(sel: Mapping[str, Any]) -> str:
        parts = []
        for name in ("ridge", "heuristic-ties"):
            g = sel.get(name) or {}
            if g.get("mean") is not None:
                lo, hi = g["ci"]
                parts.append(f"{name} {100 * g['mean']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]")
        return ", ".join(parts)

    lines = []
    if "seen" in selectors:
        seen = selectors["seen"]
        lines.append(f"- on its training tasks ({', '.join(seen.get('tasks') or [])}): `{seen.get('chosen')}`, chosen on "
                     f"task-id folds within them ({gains(seen)})")
    if "unseen" in selectors:
        unseen = selectors["unseen"]
        lines.append(f"- on {'other' if 'seen' in selectors else 'all'} tasks: `{unseen.get('chosen')}`, chosen on "
                     f"the folds above ({gains(unseen)})")
    if not lines:
        return []
    return ["How the explicit RM ranks (`ridge`: its value; `heuristic-ties`: fewest repeated actions first, the "
            "value within ties), each selector's Best-of-N pick minus the heuristic's, points, 95% CI over groups:",
            "", *lines, ""]


def _fmt_acc(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"
