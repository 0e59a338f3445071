"""Stage 6, evaluate: the SFT policy with greedy, Best-of-N and beam search (explicit RM) on test splits.

The episodes are played by the evaluation engine's runner (:func:`agentrm_gym.agents.evaluation.run_episodes`,
the loop behind ``agentrm eval``); this stage adds the pipeline's task x method grid, the fixed test ids,
the Table-1 aggregation and the RM-quality rows.

For each task of ``cfg.eval_tasks``, a fixed subset of ``eval_episodes`` TEST ids (evenly spaced over the
split, the same for every method) is played with every method of ``cfg.eval_methods``: ``greedy``
(temperature 0), ``bon:N`` (N sampled trajectories, the RM's argmax of the final states) and
``beam:W1xW2`` (step-level beam search scored by the RM). Nothing here reads the test split's rewards to
choose anything: the RM was trained on held-in train tasks only.

From the Best-of-N candidates two reference rows come for free: ``sample`` (the mean of the N samples:
what one sampled trajectory scores) and ``pass@N`` (the best candidate by the env's own progress, an
oracle upper bound on any selector).

Writes under ``<run>/eval/``: ``episodes.jsonl`` (one line per (method, task, test id), appended; a re-run
skips them), ``rm_quality.jsonl`` (RMB pairwise / Best-of-N accuracy of the RM on held-out tasks' oracle
comparison sets), ``results.json``, ``table.md`` and ``done.json``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.agents.evaluation import run_episodes
from agentrm_gym.agents.planners import make_planner
from agentrm_gym.core import unwrap_text_env
from agentrm_gym.files import repair_jsonl, write_json_atomic, write_text_atomic
from agentrm_gym.train.common import begin_stage, open_env, tb_writer
from agentrm_gym.train.config import PipelineConfig
from agentrm_gym.train.explore import policy_dir
from agentrm_gym.train.sft_stage import make_pipeline_policy
from agentrm_gym.trajectory import append_jsonl, read_jsonl


def eval_ids(ids: list[str], k: int) -> list[str]:
    """``k`` ids evenly spaced over ``ids`` (all of them for ``k <= 0``): a fixed, deterministic subset."""
    if k <= 0 or k >= len(ids):
        return list(ids)
    return [ids[(i * len(ids)) // k] for i in range(k)]


def _pct(xs: list[float]) -> float:
    return 100.0 * float(np.mean(xs)) if xs else float("nan")


def aggregate(records: list[dict[str, Any]], tasks: list[str], held_in: list[str]) -> dict[str, Any]:
    """Per-method, per-task success and progress rates (%) plus held-in / held-out / all averages."""
    rows: dict[str, dict[str, list[float]]] = {}

    def add(method: str, task: str, success: float, progress: float) -> None:
        cell = rows.setdefault(method, {}).setdefault(task, [])
        cell.append((success, progress))  # type: ignore[arg-type]

    methods: list[str] = []
    for r in records:
        if r["method"] not in methods:
            methods.append(r["method"])
        add(r["method"], r["task"], float(r["success"]), float(r["progress"]))
    bon = next((m for m in methods if m.startswith("bon")), None)
    derived = []
    if bon is not None:
        n = bon.split(":")[1] if ":" in bon else "N"
        derived = ["sample", f"pass@{n} (oracle)"]
        for r in records:
            if r["method"] != bon or not r.get("candidates"):
                continue
            cands = r["candidates"]
            add("sample", r["task"], float(np.mean([c["success"] for c in cands])),
                float(np.mean([c["progress"] for c in cands])))
            best = max(cands, key=lambda c: (c["progress"], c["success"]))
            add(derived[1], r["task"], float(best["success"]), float(best["progress"]))
    order = [m for m in methods if m == "greedy"] + derived[:1] + [m for m in methods if m != "greedy"] + derived[1:]
    table: dict[str, Any] = {}
    for m in order:
        per_task = {}
        for t in tasks:
            cell = rows.get(m, {}).get(t, [])
            per_task[t] = {"success_rate": _pct([c[0] for c in cell]), "progress_rate": _pct([c[1] for c in cell]),
                           "episodes": len(cell)}
        avg = {}
        for group, members in (("held_in", [t for t in tasks if t in held_in]),
                               ("held_out", [t for t in tasks if t not in held_in]), ("all", tasks)):
            for key in ("success_rate", "progress_rate"):
                vals = [per_task[t][key] for t in members if per_task[t]["episodes"]]
                avg[f"{group}_{key}"] = float(np.mean(vals)) if vals else float("nan")
        table[m] = {"tasks": per_task, "averages": avg}
    return table


def format_table(table: dict[str, Any], tasks: list[str], held_in: list[str], key: str,
                 notes: dict[str, str]) -> str:
    """A Markdown table like AgentRM's Table 1: methods as rows, tasks and averages as columns."""
    def fmt(v: float) -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"

    cols = [f"{t}{'*' if t in held_in else ''}" for t in tasks] + ["held-in avg", "held-out avg", "avg (all)"]
    lines = ["| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m, row in table.items():
        cells = [fmt(row["tasks"][t][key]) if t not in notes else "skipped" for t in tasks]
        cells += [fmt(row["averages"][f"{g}_{key}"]) for g in ("held_in", "held_out", "all")]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _rm_quality(cfg: PipelineConfig, rm: Any, out: Path) -> list[dict[str, Any]]:
    from agentrm_gym.rm.metrics import build_comparison_sets, evaluate_rm

    path = out / "rm_quality.jsonl"
    repair_jsonl(path)
    done = {r["task"] for r in read_jsonl(path)} if path.exists() else set()
    for task in [t for t in cfg.eval_tasks if t not in cfg.rm_tasks and t not in done]:
        env, why = open_env(task, "test")
        if env is None:
            append_jsonl(path, [{"task": task, "skipped": why}])
            continue
        try:
            sets = build_comparison_sets(env, episodes=cfg.rm_eval_episodes, seed=cfg.seed, split="test",
                                         progress_bar=False)
            metrics = evaluate_rm(rm.score, sets)
        finally:
            env.close()
        append_jsonl(path, [{"task": task, **{k: (None if isinstance(v, float) and math.isnan(v) else v)
                                              for k, v in metrics.items()}}])
    return list(read_jsonl(path)) if path.exists() else []


def run_evaluate(cfg: PipelineConfig, root: str | Path) -> dict[str, Any]:
    """Play the evaluation episodes (resumable), then write the results and the tables."""
    stage = begin_stage(root, "eval", threads=cfg.threads)
    if stage.done:
        return stage.summary
    out = stage.out
    ep_path = out / "episodes.jsonl"
    repair_jsonl(ep_path)
    done = {(r["method"], r["task"], str(r["task_id"])) for r in read_jsonl(ep_path)} if ep_path.exists() else set()
    policy = make_pipeline_policy(policy_dir(root, cfg), cfg, seed=cfg.seed)
    rm = None
    if any(m != "greedy" for m in cfg.eval_methods) or cfg.rm_eval_episodes:
        from agentrm_gym.rm import load_reward_model

        rm = load_reward_model(Path(root) / "rm")
    writer = tb_writer(root, "eval")
    notes: dict[str, str] = {}
    for task in cfg.eval_tasks:
        env, why = open_env(task, "test")
        if env is None:
            notes[task] = why
            continue
        try:
            ids = eval_ids([str(i) for i in unwrap_text_env(env).task_ids("test")], cfg.eval_episodes)
            for method in cfg.eval_methods:
                todo = [(k, i) for k, i in enumerate(ids) if (method, task, i) not in done]
                if not todo:
                    continue
                planner = make_planner(method, policy, None if method == "greedy" else rm,
                                       temperature=None if method == "greedy" else cfg.temperature,
                                       max_steps=cfg.eval_max_steps or None)
                for _, task_id, res in run_episodes(planner, env, todo, cfg.seed, f"eval {task} {method}"):
                    traj = res.trajectory
                    rec = {"method": method, "task": task, "task_id": task_id, "success": bool(traj.success),
                           "progress": float(traj.progress), "steps": len(traj.steps),
                           "actions": [s.action for s in traj.steps], "cost": res.cost.to_dict(),
                           "candidates": [{"success": bool(c.success), "progress": float(c.progress),
                                           "score": c.meta.get("score")} for c in res.candidates]}
                    append_jsonl(ep_path, [rec])
        finally:
            env.close()
    records = list(read_jsonl(ep_path)) if ep_path.exists() else []
    tasks = list(cfg.eval_tasks)
    table = aggregate(records, tasks, list(cfg.rm_tasks))
    quality = _rm_quality(cfg, rm, out) if rm is not None and cfg.rm_eval_episodes else []
    if writer is not None:
        for m, row in table.items():
            for k, v in row["averages"].items():
                if not math.isnan(v):
                    writer.add_scalar(f"charts/{m}/{k}", v, 0)
        writer.close()
    seconds = {m: round(sum(r["cost"]["wall_seconds"] for r in records if r["method"] == m), 1)
               for m in cfg.eval_methods}
    results = {"table": table, "rm_quality": quality, "notes": notes, "episodes": len(records),
               "eval_episodes_per_task": cfg.eval_episodes, "method_seconds": seconds}
    write_json_atomic(out / "results.json", results)
    md = render_markdown(results, tasks, list(cfg.rm_tasks))
    write_text_atomic(out / "table.md", md)
    return stage.finish({"results": str(out / "results.json"), "table": str(out / "table.md"),
                         "episodes": len(records), "method_seconds": seconds})


def render_markdown(results: dict[str, Any], tasks: list[str], held_in: list[str]) -> str:
    """The success-rate and progress-rate tables, the RM quality table and the notes, as Markdown."""
    notes = results.get("notes", {})
    parts = ["## Success rate (%)", "", format_table(results["table"], tasks, held_in, "success_rate", notes), "",
             "## Progress rate (%)", "", format_table(results["table"], tasks, held_in, "progress_rate", notes), "",
             "`*` held-in (the RM's training tasks). `sample`: the mean of the Best-of-N samples (one sampled "
             "trajectory); `pass@N (oracle)`: the best sample by the env's own progress (an upper bound).", ""]
    quality = [q for q in results.get("rm_quality", []) if "skipped" not in q]
    if quality:
        def f(v: Any) -> str:
            return "n/a" if v is None else f"{v:.3f}"

        parts += ["## RM quality on held-out tasks (RMB metrics, oracle comparison sets)", "",
                  "| task | pairwise acc. | Best-of-N acc. | pairs | sets |", "|---|---|---|---|---|"]
        parts += [f"| {q['task']} | {f(q['pairwise_accuracy'])} | {f(q['best_of_n_accuracy'])} | {q['pairs']} | "
                  f"{q['best_of_n_sets']} |" for q in quality]
        parts.append("")
    for task, why in notes.items():
        parts.append(f"- {task}: {why}")
    return "\n".join(parts) + "\n"
