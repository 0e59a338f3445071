"""The RL experiment's report: the before/after table with paired CIs, learning curves, sample efficiency.

Inputs are the experiment directory's ``episodes.jsonl`` (one test episode per line, phase ``before`` for the
SFT policy and ``after`` for each spec's trained policy) and each run's ``history.jsonl``.

* **Table.** For each method (``greedy``, ``bon:N``) the success and progress rates per task and the held-in /
  held-out averages of the SFT policy and of every spec after RL (:func:`agentrm_gym.train.table.summarize`),
  and paired gains with 95% bootstrap CIs (:func:`agentrm_gym.train.table.paired_gain`): every spec over the
  SFT policy, and ``rm`` over ``success``, ``outcome`` and ``heuristic``. An episode is a (seed, test id) pair,
  so the CI resamples seeds and episodes together, stratified by task.
* **Learning curves** (``curves.png``, with matplotlib): the rollouts' oracle progress against env steps, the
  mean over seeds of a running mean of 3 iterations, one line per spec.
* **Sample efficiency**: the env steps at which each spec's curve first reaches the ``outcome`` run's final
  level (the mean of its last quarter of iterations); ``not reached`` otherwise.
* **Wall time**: RL seconds per spec (rollouts + RM scoring + updates, summed over seeds), of which RM
  scoring, and evaluation seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.files import read_jsonl, write_json_atomic, write_text_atomic
from agentrm_gym.train import table as tab

BEFORE_ROW = "sft (before)"
#: The comparisons the issue asks for: the RM-shaped run against the sparse, outcome and heuristic runs.
VERSUS = {"rm": ("success", "outcome", "heuristic"), "rm-only": ("success",), "heuristic": ("outcome",)}


def method_rows(records: Sequence[dict[str, Any]], method: str, specs: Sequence[str]) -> tab.Rows:
    """``{row: {(task, "id#sSEED"): (success, progress)}}`` for one method: the SFT row, then one per spec."""
    rows: tab.Rows = {BEFORE_ROW: {}}
    rows.update({s: {} for s in specs})
    for r in records:
        if r["method"] != method:
            continue
        row = BEFORE_ROW if r["phase"] == "before" else r["spec"]
        if row in rows:
            rows[row][(r["task"], f"{r['task_id']}#s{r['seed']}")] = (float(r["success"]), float(r["progress"]))
    return {k: v for k, v in rows.items() if v}


def curves(out: Path, specs: Sequence[str], seeds: Sequence[int]) -> dict[str, dict[str, list[float]]]:
    """Per spec, ``{"env_steps": grid, "progress": mean over seeds}`` on a common grid of env steps."""
    result: dict[str, dict[str, list[float]]] = {}
    for spec in specs:
        runs = []
        for seed in seeds:
            path = out / "runs" / f"{spec}__s{seed}" / "history.jsonl"
            hist = list(read_jsonl(path)) if path.exists() else []
            if hist:
                x = np.array([h["env_steps"] for h in hist], dtype=float)
                y = np.array([h["progress"] for h in hist], dtype=float)
                smooth = np.array([y[max(0, i - 2):i + 1].mean() for i in range(len(y))])
                runs.append((x, smooth))
        if not runs:
            continue
        end = min(x[-1] for x, _ in runs)
        grid = np.linspace(min(x[0] for x, _ in runs), end, num=max(2, min(50, len(runs[0][0]))))
        mean = np.mean([np.interp(grid, x, y) for x, y in runs], axis=0)
        result[spec] = {"env_steps": grid.tolist(), "progress": mean.tolist()}
    return result


def sample_efficiency(curve: dict[str, dict[str, list[float]]], reference: str = "outcome") -> dict[str, Any]:
    """Env steps each spec needs to reach the ``reference`` run's final level (``None``: not reached)."""
    if reference not in curve:
        return {"target": None, "steps": {}}
    ref = curve[reference]["progress"]
    target = float(np.mean(ref[-max(1, len(ref) // 4):]))
    steps: dict[str, float | None] = {}
    for spec, c in curve.items():
        hit = [x for x, y in zip(c["env_steps"], c["progress"], strict=True) if y >= target - 1e-9]
        steps[spec] = float(hit[0]) if hit else None
    return {"target": target, "steps": steps}


def plot_curves(curve: dict[str, dict[str, list[float]]], path: Path, title: str) -> bool:
    """``curves.png`` (returns False without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for spec, c in curve.items():
        ax.plot(c["env_steps"], c["progress"], label=spec)
    ax.set_xlabel("env steps")
    ax.set_ylabel("oracle progress of the rollouts")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _wall(out: Path, specs: Sequence[str], seeds: Sequence[int]) -> dict[str, dict[str, float]]:
    wall: dict[str, dict[str, float]] = {}
    for spec in specs:
        rl = rm = 0.0
        for seed in seeds:
            path = out / "runs" / f"{spec}__s{seed}" / "history.jsonl"
            hist = list(read_jsonl(path)) if path.exists() else []
            if hist:
                rl += float(hist[-1]["seconds"])
                rm += float(sum(h["rm_seconds"] for h in hist))
        wall[spec] = {"rl_seconds": round(rl, 1), "rm_seconds": round(rm, 1)}
    return wall


def _fmt(v: Any, spec: str = "{:.1f}") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else spec.format(v)


def write_report(out: Path, exp: Any, held_in: Sequence[str], methods: Sequence[str], eval_seconds: dict[str, float],
                 seconds: float) -> dict[str, Any]:
    """Write ``results.json``, ``table.md`` and ``curves.png`` under ``out``; returns the results."""
    records = list(read_jsonl(out / "episodes.jsonl")) if (out / "episodes.jsonl").exists() else []
    tasks = list(exp.tasks)
    held = [t for t in tasks if t in held_in]
    results: dict[str, Any] = {"tasks": tasks, "held_in": held, "specs": list(exp.specs), "seeds": list(exp.seeds),
                               "rl": dict(exp.rl), "methods": {}}
    parts = [f"# RL with per-turn rewards: {', '.join(exp.specs)}", "",
             f"Tasks {', '.join(t + ('*' if t in held else '') for t in tasks)} (`*` held-in: the RM's training "
             f"tasks); seeds {list(exp.seeds)}; the same env-step budget ({exp.rl.get('env_steps')}) per spec; "
             f"{exp.eval_ids or 'all'} test ids per task. Rates in %. Gains are paired over (seed, test id) with a "
             "95% bootstrap CI stratified by task; `(noise)` where it contains 0.", ""]
    for method in methods:
        rows = method_rows(records, method, exp.specs)
        if not rows:
            continue
        summary = tab.summarize(rows, tasks, held)
        gains: dict[str, dict[str, Any]] = {}
        for spec in exp.specs:
            if spec in rows and BEFORE_ROW in rows:
                gains.setdefault(spec, {})[BEFORE_ROW] = tab.paired_gain(rows[spec], rows[BEFORE_ROW], tasks, held,
                                                                         2000, 0)
            for base in VERSUS.get(spec, ()):
                if spec in rows and base in rows:
                    gains.setdefault(spec, {})[base] = tab.paired_gain(rows[spec], rows[base], tasks, held, 2000, 0)
        results["methods"][method] = {"table": summary, "gains": gains}
        parts += [f"## {method}: progress rate", "", tab.format_table(summary, tasks, held, "progress_rate", {}), "",
                  f"## {method}: success rate", "", tab.format_table(summary, tasks, held, "success_rate", {}), "",
                  f"## {method}: paired gains, progress rate (points)", "", tab.format_gains(gains, "progress_rate"), "",
                  f"## {method}: paired gains, success rate (points)", "", tab.format_gains(gains, "success_rate"), ""]
    curve = curves(out, exp.specs, exp.seeds)
    eff = sample_efficiency(curve)
    wall = _wall(out, exp.specs, exp.seeds)
    plotted = plot_curves(curve, out / "curves.png", f"training rollouts, mean of seeds {list(exp.seeds)}")
    results.update(curves=curve, sample_efficiency=eff, wall=wall, eval_seconds=eval_seconds,
                   seconds=round(seconds, 1))
    parts += ["## Learning curves", ""]
    parts += ["![learning curves](curves.png)", ""] if plotted else ["(matplotlib is not installed: no plot)", ""]
    parts += [f"## Sample efficiency and cost (target: the `outcome` run's final rollout progress, "
              f"{_fmt(eff['target'], '{:.3f}')})", "",
              "| spec | final rollout progress | env steps to target | RL seconds | of which RM | eval seconds |",
              "|---|---|---|---|---|---|"]
    for spec in exp.specs:
        c = curve.get(spec)
        final = c["progress"][-1] if c else None
        parts.append(f"| {spec} | {_fmt(final, '{:.3f}')} | "
                     f"{_fmt(eff['steps'].get(spec), '{:.0f}') if eff['steps'].get(spec) is not None else 'not reached'}"
                     f" | {wall[spec]['rl_seconds']} | {wall[spec]['rm_seconds']} | {_fmt(eval_seconds.get(spec))} |")
    parts += ["", f"Total wall time {seconds:.0f} s (SFT evaluation {_fmt(eval_seconds.get('sft'))} s)."]
    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "table.md", "\n".join(parts) + "\n")
    return results
