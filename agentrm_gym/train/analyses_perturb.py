"""Robustness to reworded actions and goals (``agentrm analyze perturbation RUN``; issue 24).

AgentRM perturbs ALFWorld's action and goal wording: RM-guided search loses 2.1 points, fine-tuned policies
25.6 and 30.3. :func:`perturbation` repeats the comparison on every task of a finished pipeline run, on its
TEST split: the run's SFT policy (trained on the original wording) played on the original env (level 0) and
on perturbed ones (``gym.make(..., perturbation=k)``, :mod:`agentrm_gym.perturbation`; level 3 by default:
renamed action grammar + reworded goals) with

* ``greedy`` - the fine-tuned policy alone (temperature 0), as the evaluate stage plays it;
* ``greedy-ungrounded`` - the same without action grounding (only when the run grounds actions): the
  pipeline maps each generated action to the most similar admissible one, and the admissible actions are
  renamed too, so grounding translates part of the new wording back for the policy;
* ``bon:5`` - Best-of-5 with the run's explicit RM (``RUN/rm``);
* the run's ``beam:W1xW2`` (``beam:2x3`` when it has none) - step-level beam search with the same RM.

Each episode is the evaluate stage's own job (:func:`agentrm_gym.train.evaluate.episode_job`: its planners,
temperature, step cap, test ids and per-episode seeds), in a context whose envs are the perturbed ones, on
the run's ``workers``. An episode has the same seed at every level, so original and perturbed outcomes are
paired by (task, test id); the drop of each method is the paired difference with a stratified bootstrap 95%
CI (:func:`agentrm_gym.train.table.paired_gain`), per task and averaged over tasks. Level 4 differs from 3
only in the prompt's one-shot example, which the pipeline's compact prompt does not show.

Episodes (and the Best-of-5 candidates) are appended to ``RUN/analysis/perturbation/*.jsonl``; a rerun plays
only what is missing. Writes ``RUN/analysis/perturbation.{json,md,png}``. Nothing is chosen from test outcomes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentrm_gym.core import AgentRMGymError, unwrap_text_env
from agentrm_gym.files import repair_jsonl, write_json_atomic
from agentrm_gym.parallel import canonical_jsonl
from agentrm_gym.perturbation import LEVELS, check_level
from agentrm_gym.train import table as tab
from agentrm_gym.train.context import StageContext, play_jobs
from agentrm_gym.trajectory import append_jsonl, read_jsonl

NAME = "perturbation"
UNGROUNDED = "greedy-ungrounded"
#: Test episodes per task (all methods) and beam episodes per task (a subset of those) of each size.
SIZES: dict[str, dict[str, int]] = {"smoke": {"episodes": 2, "beam_episodes": 1},
                                    "full": {"episodes": 24, "beam_episodes": 6}}
FULL_COST_NOTE = ("24 test episodes per task (beam 6) at levels 0 and 3: 9 x 2 x (3 x 24 + 6) = 1,404 episodes on "
                  "a demo run. Scaled from the demo's own evaluate stage on an idle 2-core machine (30 episodes per "
                  "task, beam 8: 165 s greedy, 707 s Best-of-5, 456 s beam:2x3 of episode time in 779 s wall on 2 "
                  "workers), about 2,340 s of episode time, 23 minutes wall, plus a minute or two of start-up "
                  "(an estimate, not a measurement)")
#: AgentRM's robustness test (ALFWorld, perturbed action and goal wording): drops in points.
AGENTRM = {"search": "-2.1 (RM-guided search)", "policy": "-25.6 / -30.3 (fine-tuned policies)"}
BON = "bon:5"
DEFAULT_BEAM = "beam:2x3"


class PerturbedContext(StageContext):
    """A worker's context whose envs are ``make(task, split, perturbation=self.level)`` (one open at a time:
    jobs come task by task and level by level, so each (task, level) env is built about once)."""

    level = 0

    def try_env(self, task: str, split: str) -> tuple[Any, str]:
        from agentrm_gym.registry import make

        want = (task, self.level)
        held = self._envs.pop(split, None)
        if held is not None and held[0] == want:
            self._envs[split] = held
            return held[1], ""
        if held is not None:
            held[1].close()
        try:
            env = make(task, split=split, perturbation=self.level)
        except (AgentRMGymError, ImportError, OSError) as exc:
            return None, f"{task} skipped: {exc}"
        self._envs[split] = (want, env)
        return env, ""


def perturbed_episode(ctx: PerturbedContext, job: tuple[str, int, str, str]) -> dict[str, Any]:
    """One episode ``(task, level, method, task_id)`` (a worker's job): the evaluate stage's episode job on the
    level's env; ``greedy-ungrounded`` is greedy with the policy's action grounding off."""
    from agentrm_gym.train.evaluate import episode_job

    task, level, method, task_id = job
    ctx.level = level
    policy = ctx.policy
    grounding = getattr(policy, "grounding", "none")
    if method == UNGROUNDED:
        policy.grounding = "none"
    try:
        res = episode_job(ctx, (task, "greedy" if method == UNGROUNDED else method, task_id))
    finally:
        if method == UNGROUNDED:
            policy.grounding = grounding
    res["episode"].update(method=method, level=level)
    if res["candidates"] is not None:
        res["candidates"].update(method=method, level=level)
    return res


def _key(r: Mapping[str, Any]) -> tuple[int, str, str, str]:
    return int(r["level"]), str(r["method"]), str(r["task"]), str(r["task_id"])


def _settings(cfg: Any, methods: Sequence[str]) -> dict[str, Any]:
    """What an episode's outcome depends on besides its identity: a change discards the saved episodes."""
    return {"methods": list(methods), "seed": cfg.seed, "temperature": cfg.temperature,
            "eval_max_steps": cfg.eval_max_steps, "grounding": cfg.action_grounding, "policy": cfg.policy}


def _open_store(out: Path, settings: dict[str, Any]) -> tuple[Path, Path, set[tuple[int, str, str, str]]]:
    from agentrm_gym.train.explore import drop_uncommitted

    out.mkdir(parents=True, exist_ok=True)
    ep_path, cand_path, meta = out / "episodes.jsonl", out / "candidates.jsonl", out / "settings.json"
    try:
        saved = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = None
    if saved != settings:  # episodes of other settings are not these settings' episodes
        ep_path.unlink(missing_ok=True)
        cand_path.unlink(missing_ok=True)
        write_json_atomic(meta, settings)
    repair_jsonl(ep_path)
    repair_jsonl(cand_path)
    done = {_key(r) for r in read_jsonl(ep_path)} if ep_path.exists() else set()
    drop_uncommitted(cand_path, done, key=_key)  # the episode line is the commit point
    return ep_path, cand_path, done


def perturbation(run: str | Path, *, size: str = "full", levels: Sequence[int] = (0, 3)) -> dict[str, Any]:
    """Original vs perturbed wording for the run's SFT policy greedy, Best-of-5 and beam with its RM (module
    docstring); writes ``RUN/analysis/perturbation.{json,md,png}`` and returns the result.

    Args:
        run: a finished ``agentrm pipeline`` run (``config.json``, ``sft/policy``, ``rm/``).
        size: ``"smoke"`` (2 test episodes per task, 1 beam) or ``"full"`` (24, beam 6: :data:`FULL_COST_NOTE`).
        levels: perturbation levels to play; 0 (the original) is always played, each other level's drop is
            measured against it.

    Raises:
        ValueError: an unknown size or level.
    """
    from agentrm_gym.train.config import load_config
    from agentrm_gym.train.evaluate import eval_ids

    if size not in SIZES:
        raise ValueError(f"perturbation: unknown size {size!r}; use one of {', '.join(SIZES)}")
    levels = sorted({0, *(check_level(k) for k in levels)})
    started = time.time()
    root = Path(run)
    cfg = load_config(root / "config.json")
    spec = SIZES[size]
    beam = next((m for m in cfg.eval_methods if m.startswith("beam")), DEFAULT_BEAM)
    methods = ["greedy", *([UNGROUNDED] if cfg.action_grounding != "none" else []), BON, beam]
    tasks, held_in = list(cfg.eval_tasks), list(cfg.rm_tasks)
    ep_path, cand_path, done = _open_store(root / "analysis" / NAME, _settings(cfg, methods))
    ctx = PerturbedContext(cfg.to_dict(), root)
    notes: dict[str, str] = {}
    order: list[tuple[str, int, str, str]] = []
    try:
        for task in tasks:
            ctx.level = 0
            env, why = ctx.try_env(task, "test")
            if env is None:
                notes[task] = why
                continue
            ids = eval_ids([str(i) for i in unwrap_text_env(env).task_ids("test")], spec["episodes"])
            for level in levels:
                for m in methods:
                    order += [(task, level, m, i) for i in (eval_ids(ids, spec["beam_episodes"]) if m == beam else ids)]
        todo = [j for j in order if (j[1], j[2], j[0], j[3]) not in done]
        for _, res in play_jobs(ctx, perturbed_episode, todo, NAME):
            if res["candidates"] is not None:
                append_jsonl(cand_path, [res["candidates"]])
            append_jsonl(ep_path, [res["episode"]])
    finally:
        ctx.close()
    keys = [(j[1], j[2], j[0], j[3]) for j in order]
    canonical_jsonl(ep_path, _key, keys)
    canonical_jsonl(cand_path, _key, keys)
    wanted = set(keys)
    records = [r for r in read_jsonl(ep_path) if _key(r) in wanted] if ep_path.exists() else []
    result = summarize(records, tasks, held_in, methods, levels, cfg.bootstrap, cfg.seed)
    result.update({"analysis": NAME, "run": str(root), "size": size, "played": len(todo),
                   "episodes_per_task": spec["episodes"],
                   "beam_episodes_per_task": spec["beam_episodes"], "grounding": cfg.action_grounding,
                   "eval_max_steps": cfg.eval_max_steps, "notes": notes, "agentrm": AGENTRM,
                   "wall_seconds": round(time.time() - started, 1), "full_size_cost": FULL_COST_NOTE})
    from agentrm_gym.train.analyses import _write

    _write(root, NAME, result, markdown(result), plot)
    return result


def summarize(records: Sequence[Mapping[str, Any]], tasks: Sequence[str], held_in: Sequence[str],
              methods: Sequence[str], levels: Sequence[int], resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Rates per level and method, and each perturbed level's paired drop against level 0 (per task and
    averaged), from episode records ``{"level", "method", "task", "task_id", "success", "progress"}``."""
    rows = {level: tab.episode_rows([r for r in records if int(r["level"]) == level]) for level in levels}
    rates = {str(level): tab.summarize(rows[level], tasks, held_in) for level in levels}
    drops: dict[str, Any] = {}
    for level in [k for k in levels if k]:
        drops[str(level)] = {}
        for m in methods:
            pert, orig = rows[level].get(m, {}), rows[0].get(m, {})
            per_task = {t: tab.paired_gain(pert, orig, [t], [], resamples, seed) for t in tasks}
            drops[str(level)][m] = {
                "average": tab.paired_gain(pert, orig, tasks, held_in, resamples, seed),
                "tasks": {t: {**g["all_progress_rate"], "success": g["all_success_rate"]} for t, g in per_task.items()},
            }
    seconds = {m: round(sum(r["cost"]["wall_seconds"] for r in records if r["method"] == m and "cost" in r), 1)
               for m in methods}
    return {"levels": list(levels), "level_names": {str(k): LEVELS[k] for k in levels}, "methods": list(methods),
            "tasks": list(tasks), "held_in": list(held_in), "rates": rates, "drops": drops,
            "episodes": len(records), "method_seconds": seconds}


# -------------------------------------------------------------------------------------------- outputs
def _num(v: Any) -> str:
    return "n/a" if v is None or v != v else f"{v:.1f}"


def _ci(cell: Mapping[str, Any] | None) -> str:
    if not cell or cell.get("mean") is None:
        return "n/a"
    noise = " (noise)" if cell["lo"] <= 0.0 <= cell["hi"] else ""
    return f"{cell['mean']:+.1f} [{cell['lo']:+.1f}, {cell['hi']:+.1f}]{noise}"


def _agentrm(method: str) -> str:
    return AGENTRM["policy"] if method.startswith("greedy") else AGENTRM["search"]


def markdown(r: Mapping[str, Any]) -> str:
    """One table per perturbed level and metric: each task's and the averages' rates on the original and the
    perturbed wording and the paired drop with its 95% CI, AgentRM's ALFWorld drops beside ALFWorld and the
    averages."""
    tasks, methods = r["tasks"], r["methods"]
    groups = (("all", "avg (all tasks)"), ("held_in", "held-in avg"), ("held_out", "held-out avg"))
    lines = [f"# Robustness to perturbed wording: `{r['run']}` (size {r['size']})", "",
             f"The run's SFT policy (trained on the original wording) on {r['episodes_per_task']} test episodes per "
             f"task ({r['beam_episodes_per_task']} for beam), each played on the original env (level 0) and the "
             "perturbed one with the same seed; drop = perturbed - original, in points, with a paired stratified "
             "bootstrap 95% CI over episodes (`(noise)`: the CI contains 0). Action grounding: "
             f"`{r['grounding']}`; step cap {r['eval_max_steps'] or 'the task budget'}.", ""]
    for level, by_method in r["drops"].items():
        orig, pert = r["rates"]["0"], r["rates"][level]
        for metric, label in (("progress_rate", "progress rate"), ("success_rate", "success rate")):
            lines += [f"## Level {level} ({r['level_names'][level]}) vs original: {label} (%)", "",
                      "| task | method | episodes | original | perturbed | drop [95% CI] | AgentRM (ALFWorld) |",
                      "|---|---|---|---|---|---|---|"]
            for t in tasks:
                if t in r["notes"]:
                    lines.append(f"| {t} | (skipped) | 0 | | | | |")
                    continue
                for m in methods:
                    if m not in orig:
                        continue
                    cell = by_method[m]["tasks"][t]
                    cell = cell if metric == "progress_rate" else cell["success"]
                    lines.append(f"| {t} | {m} | {cell['episodes']} | {_num(orig[m]['tasks'][t][metric])} | "
                                 f"{_num(pert.get(m, {}).get('tasks', {}).get(t, {}).get(metric))} | {_ci(cell)} | "
                                 f"{_agentrm(m) if t == 'ALFWorld' else ''} |")
            for g, glabel in groups:
                for m in methods:
                    if m not in orig:
                        continue
                    cell = by_method[m]["average"][f"{g}_{metric}"]
                    if not cell["episodes"]:
                        continue
                    lines.append(f"| **{glabel}** | {m} | {cell['episodes']} | {_num(orig[m]['averages'][f'{g}_{metric}'])} "
                                 f"| {_num(pert.get(m, {}).get('averages', {}).get(f'{g}_{metric}'))} | {_ci(cell)} "
                                 f"| {_agentrm(m) if g == 'all' else ''} |")
            lines.append("")
    lines += ["AgentRM's numbers are its robustness test on ALFWorld (its own perturbed action and goal wording): "
              "RM-guided search -2.1 points, two fine-tuned policies -25.6 and -30.3; shown for scale beside "
              "ALFWorld and the all-task average, not as like-for-like measurements. `greedy-ungrounded` is the "
              "greedy policy without action grounding (the pipeline grounds each generated action to the most "
              "similar admissible one, and the admissible actions speak the perturbed grammar).", ""]
    secs = ", ".join(f"{m} {s:.0f} s" for m, s in r["method_seconds"].items())
    lines += [f"Cost: {r['episodes']} episodes ({secs} of episode time, summed over workers); this call played "
              f"{r['played']} of them in {r['wall_seconds']:.0f} s wall. Full size: {r['full_size_cost']}.", ""]
    lines += [f"- {t}: {why}" for t, why in r["notes"].items()]
    return "\n".join(lines) + "\n"


def plot(r: Mapping[str, Any], path: Path) -> Path:
    """Each method's averaged drop (all tasks) with its 95% CI, progress and success, per perturbed level."""
    from agentrm_gym.train.report import _figure, _save

    fig = _figure(7.5, 3.6)
    axes = fig.subplots(1, 2, sharey=False)
    for ax, metric, label in zip(axes, ("progress_rate", "success_rate"), ("progress", "success"), strict=True):
        width = 0.8 / max(1, len(r["drops"]))
        for k, (level, by_method) in enumerate(r["drops"].items()):
            cells = [by_method[m]["average"][f"all_{metric}"] for m in r["methods"]]
            xs = [i + k * width for i in range(len(cells))]
            ys = [c["mean"] or 0.0 for c in cells]
            err = [[max(0.0, y - (c["lo"] if c["lo"] is not None else y)) for y, c in zip(ys, cells, strict=True)],
                   [max(0.0, (c["hi"] if c["hi"] is not None else y) - y) for y, c in zip(ys, cells, strict=True)]]
            ax.bar(xs, ys, width=width, yerr=err, capsize=3, label=f"level {level}")
        ax.axhline(0.0, color="0.3", lw=0.8)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(r["methods"]))], r["methods"], rotation=20, fontsize="small")
        ax.set_ylabel(f"{label}: perturbed - original (points)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize="small")
    return _save(fig, path)
