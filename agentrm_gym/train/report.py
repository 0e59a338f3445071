"""The report of a pipeline run: ``RUN/report/report.md`` with PNG plots (``agentrm report RUN``).

:func:`write_report` reads what the stages left in the run directory and writes ``RUN/report/``:

* ``table1_progress.png`` - Table 1 as grouped bars: the progress rate of every method on every task and
  on the held-in / held-out / all averages (``eval/results.json``);
* ``gains_vs_sample.png`` - the paired gains of every method over ``sample`` (one sampled trajectory),
  progress and success rate, held-in / held-out / all, with the 95% bootstrap CIs of ``results["gains"]``;
* ``bon_scaling.png`` (and ``bon_scaling.json``) - Best-of-N scaling from the saved candidates
  (``eval/candidates.jsonl``, ``eval/scores/<rm>.jsonl``): for N = 1 .. the number saved, the expected
  progress of the candidate an RM ranks first among N drawn at random (exactly: the mean over all
  N-subsets, ties sharing the pick as in Table 1, :func:`pick_probabilities`), per task then averaged over
  tasks, beside the oracle (the best of the N) and random (one candidate) curves; the baselines of
  ``eval_rms`` (``heuristic``, ``stats-only``, ``encoder-only``) are curves like any RM's;
* ``rm_training.png`` - every ``losses/*`` and ``rm/*`` TensorBoard scalar under ``RUN/tb/*/`` (and the
  event files an RM trainer left in ``RUN/rm*/``), when tensorboard is installed;
* ``report.md`` - the plots (relative paths), Table 1 (``eval/table.md``), the config highlights and the
  stage wall times (``RUN/*/done.json``).

A missing input (a run whose evaluation has not finished, no tensorboard) drops its section with a note;
plots are drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend change).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from math import comb
from pathlib import Path
from typing import Any

from agentrm_gym.files import read_jsonl, write_json_atomic, write_text_atomic

__all__ = ["CONFIG_HIGHLIGHTS", "PLOTS", "bon_scaling", "pick_probabilities", "read_scalars", "write_report"]

#: The PNGs a report may hold, by section.
PLOTS = {"table1": "table1_progress.png", "gains": "gains_vs_sample.png", "bon": "bon_scaling.png",
         "rm": "rm_training.png"}
#: The config fields shown in the report (those the run has).
CONFIG_HIGHLIGHTS = ("name", "seed", "sft_tasks", "rm_tasks", "eval_tasks", "policy", "expert_episodes",
                     "sft_steps", "explore_trees", "mcts_iterations", "explore_groups", "labels", "rm_kind",
                     "rm_backbone", "rm_text", "eval_methods", "eval_episodes", "eval_rms", "bootstrap")
#: Stage directories in pipeline order (others with a done.json follow, sorted).
STAGE_DIRS = ("expert", "sft", "explore", "extract", "rm", "eval")
GROUP_LABELS = {"held_in": "held-in", "held_out": "held-out", "all": "all"}
EXPLICIT = "explicit"


# ------------------------------------------------------------------------------------------------ inputs


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _num(x: Any) -> float | None:
    """``x`` as a finite float, else ``None`` (results.json writes NaN as null)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def stage_times(root: Path) -> list[tuple[str, float | None]]:
    """``(stage dir, wall_seconds)`` of every ``RUN/*/done.json``, in pipeline order."""
    found = sorted(p.parent.name for p in root.glob("*/done.json"))
    order = [s for s in STAGE_DIRS if s in found] + [s for s in found if s not in STAGE_DIRS]
    out = []
    for name in order:
        done = _read_json(root / name / "done.json")
        out.append((name, _num(done.get("wall_seconds")) if isinstance(done, dict) else None))
    return out


def read_scalars(root: str | Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """``{source: {tag: [(step, value)] sorted by step}}`` of the TensorBoard event files of a run.

    Sources are ``tb/<stage>`` for every ``RUN/tb/<stage>/`` and ``<dir>`` for an RM directory
    (``RUN/rm*/``) that holds event files of its own. Empty without tensorboard.
    """
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return {}
    root = Path(root)
    dirs = sorted(d for d in (root / "tb").glob("*") if d.is_dir()) if (root / "tb").is_dir() else []
    dirs += sorted(d for d in root.glob("rm*") if d.is_dir() and any(d.glob("events.out.tfevents*")))
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for d in dirs:
        acc = EventAccumulator(str(d), size_guidance={"scalars": 0})
        try:
            acc.Reload()
            tags = acc.Tags().get("scalars", [])
        except Exception:  # noqa: BLE001 - an unreadable event file loses its series, not the report
            continue
        series = {t: sorted((int(e.step), float(e.value)) for e in acc.Scalars(t)) for t in tags}
        if series:
            out[str(d.relative_to(root))] = series
    return out


# ------------------------------------------------------------------------------------------ Best-of-N


def pick_probabilities(keys: Sequence[float], n: int, ties: str = "first") -> list[float]:
    """The chance that candidate ``i`` is the one picked (the highest key) from a uniformly random
    ``n``-subset of the candidates.

    ``ties="first"``: the first of tied keys is picked, as ``np.argmax``; ``ties="share"``: tied keys share
    the pick equally, as Table 1 credits a selector (:func:`agentrm_gym.train.table.top_candidates`).
    Exact: with ``b_i`` candidates that ``i`` beats and ``e_i`` others tied with it, ``i`` is drawn with
    ``j`` of its ties and ``n - 1 - j`` of those it beats in ``C(e_i, j) C(b_i, n - 1 - j)`` of the
    ``C(len(keys), n)`` subsets and then picked with chance ``1 / (j + 1)``; the same as averaging the pick
    over ``itertools.combinations(range(len(keys)), n)``. A non-finite key (an RM's NaN) ranks lowest.
    """
    m = len(keys)
    if not 1 <= n <= m:
        raise ValueError(f"n must be in [1, {m}], got {n}")
    if ties not in ("first", "share"):
        raise ValueError(f"ties must be 'first' or 'share', got {ties!r}")
    k = [float(x) if x is not None and math.isfinite(float(x)) else -math.inf for x in keys]
    total = comb(m, n)
    probs = []
    for i in range(m):
        if ties == "first":
            beaten = sum(1 for j in range(m) if j != i and (k[i] > k[j] or (k[i] == k[j] and i < j)))
            probs.append(comb(beaten, n - 1) / total)
            continue
        beaten = sum(1 for j in range(m) if k[i] > k[j])
        tied = sum(1 for j in range(m) if j != i and k[i] == k[j])
        probs.append(sum(comb(tied, j) * comb(beaten, n - 1 - j) / (j + 1) for j in range(min(tied, n - 1) + 1))
                     / total)
    return probs


def _expected_pick(keys: Sequence[float], values: Sequence[float], n: int) -> float:
    return float(sum(p * v for p, v in zip(pick_probabilities(keys, n, ties="share"), values, strict=True)))


def _load_scores(path: Path) -> dict[tuple[str, str], list[Any]]:
    return {(r["task"], str(r["task_id"])): list(r.get("scores") or []) for r in read_jsonl(path)}


def bon_scaling(root: str | Path) -> dict[str, Any] | None:
    """Best-of-N scaling of a run's saved candidates, or ``None`` without ``eval/candidates.jsonl``.

    Returns ``{"n": [1..N], "tasks", "held_in", "curves": {name: {group: [progress % per n]}},
    "per_task": {name: {task: [...]}}, "episodes": {task: count}}``; names are ``explicit`` (the
    candidates' ``score``), every ``eval/scores/<rm>.jsonl``, ``oracle`` (the best of the N) and
    ``random`` (one candidate, the same for every N). An RM whose scores are missing or misaligned for an
    episode leaves that episode out of its curve. Groups (``held_in``, ``held_out``, ``all``) average the
    tasks that have episodes (held-in: ``config.json``'s ``rm_tasks``).
    """
    root = Path(root)
    path = root / "eval" / "candidates.jsonl"
    if not path.exists():
        return None
    records = [r for r in read_jsonl(path) if r.get("candidates")]
    if not records:
        return None
    # several Best-of-N methods: keep the one with the most candidates (the scores files follow keys)
    widest = max(len(r["candidates"]) for r in records)
    method = next(r.get("method") for r in records if len(r["candidates"]) == widest)
    records = [r for r in records if r.get("method") == method]
    n_max = min(len(r["candidates"]) for r in records)
    ns = list(range(1, n_max + 1))
    scorers: dict[str, dict[tuple[str, str], list[Any]]] = {
        EXPLICIT: {(r["task"], str(r["task_id"])): [c.get("score") for c in r["candidates"]] for r in records}}
    for p in sorted((root / "eval" / "scores").glob("*.jsonl")) if (root / "eval" / "scores").is_dir() else []:
        scorers[p.stem] = _load_scores(p)
    cfg = _read_json(root / "config.json") or {}
    held_in = [str(t) for t in cfg.get("rm_tasks") or []]
    seen = list(dict.fromkeys(r["task"] for r in records))
    tasks = [t for t in cfg.get("eval_tasks") or [] if t in seen] + [t for t in seen if t not in (cfg.get("eval_tasks") or [])]

    # per episode, per curve: expected progress (%) for each n
    per_ep: dict[str, dict[str, list[list[float]]]] = {}
    for rec in records:
        key = (rec["task"], str(rec["task_id"]))
        prog = [100.0 * float(c["progress"]) for c in rec["candidates"]]
        m = len(prog)
        curves = {"oracle": prog, "random": None}
        for name, by_key in scorers.items():
            s = by_key.get(key)
            if s is not None and len(s) == m and not all(x is None for x in s):
                curves[name] = s
        for name, keys in curves.items():
            if name == "random":
                vals = [sum(prog) / m] * len(ns)
            else:
                vals = [_expected_pick(keys, prog, n) for n in ns]  # n <= n_max <= m
            per_ep.setdefault(name, {}).setdefault(rec["task"], []).append(vals)

    order = [EXPLICIT] + sorted(k for k in per_ep if k not in (EXPLICIT, "oracle", "random")) + ["oracle", "random"]
    per_task = {name: {t: [sum(v[i] for v in eps) / len(eps) for i in range(len(ns))]
                       for t, eps in per_ep[name].items()} for name in order if name in per_ep}
    groups = {"held_in": [t for t in tasks if t in held_in], "held_out": [t for t in tasks if t not in held_in],
              "all": tasks}
    curves: dict[str, dict[str, list[float]]] = {}
    for name, by_task in per_task.items():
        for g, ts in groups.items():
            have = [by_task[t] for t in ts if t in by_task]
            if have:
                curves.setdefault(name, {})[g] = [sum(v[i] for v in have) / len(have) for i in range(len(ns))]
    return {"n": ns, "method": method, "tasks": tasks, "held_in": held_in, "curves": curves, "per_task": per_task,
            "episodes": {t: len(per_ep["oracle"].get(t, [])) for t in tasks}}


# ----------------------------------------------------------------------------------------------- plots


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Any, path: Path) -> Path:
    """Save a figure as PNG through a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_table1(results: Mapping[str, Any], tasks: Sequence[str], held_in: Sequence[str], path: Path) -> Path | None:
    """Grouped bars: progress rate (%) per method on every task and on the three averages."""
    table = results.get("table") or {}
    methods = list(table)
    if not methods:
        return None
    labels = [f"{t}*" if t in held_in else t for t in tasks] + ["held-in avg", "held-out avg", "avg (all)"]
    values = []
    for m in methods:
        row = table[m]
        per_task = [_num((row.get("tasks") or {}).get(t, {}).get("progress_rate")) for t in tasks]
        avg = row.get("averages") or {}
        values.append(per_task + [_num(avg.get(f"{g}_progress_rate")) for g in ("held_in", "held_out", "all")])
    fig = _figure(max(6.0, 0.35 * len(labels) * len(methods) + 2), 4.2)
    ax = fig.add_subplot()
    width = 0.8 / len(methods)
    for i, (m, vals, color) in enumerate(zip(methods, values, _colors(len(methods)), strict=True)):
        xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(labels))]
        ax.bar([x for x, v in zip(xs, vals, strict=True) if v is not None],
               [v for v in vals if v is not None], width, label=m, color=color)
    ax.axvline(len(tasks) - 0.5, color="0.6", lw=0.8, ls="--")
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center")
    ax.set_ylabel("progress rate (%)")
    ax.set_title("Table 1: progress rate per task (* held-in)")
    ax.legend(fontsize="small", ncols=min(4, len(methods)), loc="upper left", bbox_to_anchor=(0, -0.12 if len(labels) <= 6 else -0.25))
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_gains(results: Mapping[str, Any], path: Path, baseline: str = "sample") -> Path | None:
    """Paired gains over ``baseline`` (points) with 95% CI error bars, per method and group."""
    gains = results.get("gains") or {}
    methods = [m for m, by_base in gains.items() if isinstance(by_base, dict) and baseline in by_base]
    if not methods:
        return None
    groups = list(GROUP_LABELS)
    fig = _figure(max(7.0, 1.6 * len(methods) + 3), 4.0)
    axes = fig.subplots(1, 2, sharey=False)
    width = 0.8 / len(groups)
    colors = _colors(len(groups))
    for ax, metric in zip(axes, ("progress_rate", "success_rate"), strict=True):
        for gi, g in enumerate(groups):
            xs, ys, lo, hi = [], [], [], []
            for mi, m in enumerate(methods):
                cell = gains[m][baseline].get(f"{g}_{metric}") or {}
                mean, a, b = _num(cell.get("mean")), _num(cell.get("lo")), _num(cell.get("hi"))
                if mean is None:
                    continue
                xs.append(mi + (gi - (len(groups) - 1) / 2) * width)
                ys.append(mean)
                lo.append(max(0.0, mean - a) if a is not None else 0.0)  # float rounding can put the mean a hair outside its CI
                hi.append(max(0.0, b - mean) if b is not None else 0.0)
            if xs:
                ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=GROUP_LABELS[g], color=colors[gi])
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xticks(range(len(methods)), methods, rotation=20, ha="right")
        ax.set_ylabel("gain (points)")
        ax.set_title(f"{metric.replace('_', ' ')} gain over {baseline} (95% CI)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize="small")
    return _save(fig, path)


def plot_bon(scaling: Mapping[str, Any], path: Path) -> Path | None:
    """Best-of-N scaling: one panel per task group, one line per RM plus oracle and random."""
    curves = scaling["curves"]
    groups = [g for g in GROUP_LABELS if any(g in c for c in curves.values())]
    if not groups:
        return None
    ns = scaling["n"]
    fig = _figure(4.2 * len(groups), 3.8)
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    names = list(curves)
    colors = dict(zip(names, _colors(len(names)), strict=True))
    for ax, g in zip(axes, groups, strict=True):
        for name in names:
            ys = curves[name].get(g)
            if ys is None:
                continue
            style = {"oracle": dict(ls="--", color="0.2"), "random": dict(ls=":", color="0.5")}.get(
                name, dict(color=colors[name], marker="o"))
            label = {"oracle": "oracle (best of N)", "random": "random (one candidate)"}.get(name, f"RM: {name}")
            ax.plot(ns, ys, label=label, **style)
        ax.set_xticks(ns)
        ax.set_xlabel("N (candidates)")
        ax.set_ylabel("progress rate (%)")
        ax.set_title(f"Best-of-N, {GROUP_LABELS[g]} tasks")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    return _save(fig, path)


def plot_scalars(scalars: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]], path: Path,
                 prefixes: tuple[str, ...] = ("losses/", "rm/")) -> tuple[Path | None, list[str]]:
    """One panel per ``losses/*`` or ``rm/*`` series; returns the PNG (or ``None``) and the series drawn."""
    series = [(src, tag, pts) for src, tags in scalars.items() for tag, pts in sorted(tags.items())
              if tag.startswith(prefixes) and pts]
    if not series:
        return None, []
    cols = min(3, len(series))
    rows = math.ceil(len(series) / cols)
    fig = _figure(4.0 * cols, 3.0 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (src, tag, pts) in zip(axes, series, strict=False):
        steps, vals = zip(*pts, strict=True)
        ax.plot(steps, vals, marker="o" if len(pts) <= 20 else None, ms=3)
        ax.set_title(f"{tag}  ({src})", fontsize="small")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in axes[len(series):]:
        ax.set_visible(False)
    return _save(fig, path), [f"{src}: {tag}" for src, tag, _ in series]


# ---------------------------------------------------------------------------------------------- report


def _md_value(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(str(x) for x in v) if v else "(none)"
    return str(v) if v not in ("", None) else "(default)"


def _demote(markdown: str) -> str:
    """Headings one level down (Table 1's ``##`` sections become ``###`` in the report)."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.splitlines())


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN/report/report.md`` and its PNG plots (see the module docstring); returns report.md.

    Raises:
        FileNotFoundError: ``run_dir`` is not a directory.
        MissingExtra: matplotlib is not installed (``pip install 'agentrm-gym[report]'``).
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(2, "no such run directory", str(root))
    from agentrm_gym.extras import require_extra

    require_extra("matplotlib", "report", "agentrm report (the plots)")
    out = root / "report"
    out.mkdir(parents=True, exist_ok=True)
    for name in PLOTS.values():  # a plot this run no longer has must not linger
        (out / name).unlink(missing_ok=True)
    cfg = _read_json(root / "config.json") or {}
    results = _read_json(root / "eval" / "results.json")
    held_in = [str(t) for t in cfg.get("rm_tasks") or []]
    lines = [f"# Report: {cfg.get('name', root.name)}", "", f"Run directory: `{root}`", ""]

    # config and wall times
    lines += ["## Config highlights", "", "| field | value |", "|---|---|"]
    lines += [f"| {k} | {_md_value(cfg[k])} |" for k in CONFIG_HIGHLIGHTS if k in cfg]
    if not cfg:
        lines += ["| (no config.json) | |"]
    lines += ["", "## Stage wall times", ""]
    times = stage_times(root)
    if times:
        lines += ["| stage | wall seconds |", "|---|---|"]
        lines += [f"| {s} | {'-' if t is None else f'{t:.1f}'} |" for s, t in times]
        total = sum(t for _, t in times if t is not None)
        lines += [f"| **total** | **{total:.1f}** |"]
    else:
        lines += ["No stage has finished (no `*/done.json`)."]
    lines += [""]

    # Table 1
    lines += ["## Table 1", ""]
    if isinstance(results, dict):
        tasks = list(cfg.get("eval_tasks") or [])
        for row in (results.get("table") or {}).values():
            tasks += [t for t in (row.get("tasks") or {}) if t not in tasks]
        p = plot_table1(results, tasks, held_in, out / PLOTS["table1"])
        if p:
            lines += [f"![Table 1: progress rate per task]({p.name})", ""]
        p = plot_gains(results, out / PLOTS["gains"])
        if p:
            lines += [f"![Paired gains over sample]({p.name})", ""]
        else:
            lines += ["No paired gains over `sample` in results.json.", ""]
        table_md = root / "eval" / "table.md"
        if table_md.exists():
            lines += [_demote(table_md.read_text(encoding="utf-8").strip()), ""]
    else:
        lines += ["No `eval/results.json` (the evaluate stage has not finished).", ""]

    # Best-of-N
    lines += ["## Best-of-N scaling", ""]
    scaling = bon_scaling(root)
    if scaling:
        write_json_atomic(out / "bon_scaling.json", scaling)
        p = plot_bon(scaling, out / PLOTS["bon"])
        if p:
            lines += [f"![Best-of-N scaling]({p.name})", ""]
        ns = scaling["n"]
        lines += [f"Expected progress rate (%) of the candidate each RM ranks first among N drawn at random from "
                  f"the {ns[-1]} saved per episode (`{scaling['method']}`; the exact mean over all N-subsets), "
                  "per task then averaged over tasks; oracle: the best of the N; random: one candidate.", ""]
        for g in GROUP_LABELS:
            names = [n for n, c in scaling["curves"].items() if g in c]
            if not names:
                continue
            lines += [f"**{GROUP_LABELS[g]}** tasks", "", "| curve | " + " | ".join(f"N={n}" for n in ns) + " |",
                      "|---|" + "---|" * len(ns)]
            lines += [f"| {n} | " + " | ".join(f"{v:.1f}" for v in scaling["curves"][n][g]) + " |" for n in names]
            lines += [""]
    else:
        lines += ["No saved Best-of-N candidates (`eval/candidates.jsonl`).", ""]

    # RM training curves
    lines += ["## RM training curves", ""]
    scalars = read_scalars(root)
    p, drawn = plot_scalars(scalars, out / PLOTS["rm"])
    if p:
        lines += [f"![RM training curves]({p.name})", "", "Series: " + "; ".join(f"`{d}`" for d in drawn), ""]
    else:
        from agentrm_gym.extras import is_available

        why = ("tensorboard is not installed (`pip install tensorboard`)" if not is_available("tensorboard")
               else "no `losses/*` or `rm/*` scalars under `tb/`")
        lines += [f"No RM training curves: {why}.", ""]
    return write_text_atomic(out / "report.md", "\n".join(lines).rstrip() + "\n")
