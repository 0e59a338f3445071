"""Stage 6, evaluate: the SFT policy with greedy, Best-of-N and beam search on test splits (Table 1).

Each episode is a job (:func:`episode_job`: the planner of its method on ``ctx``'s test env) played by
:func:`agentrm_gym.train.context.play` in this process or on ``workers`` processes / Ray; this stage adds the
pipeline's task x method grid, the fixed test ids, the saved candidates, their re-scoring by other RMs, and the Table-1 aggregation with paired CIs
(:mod:`agentrm_gym.train.table`).

For each task of ``cfg.eval_tasks``, a fixed subset of ``eval_episodes`` TEST ids (evenly spaced over the
split, the same for every method) is played with every method of ``cfg.eval_methods``: ``greedy``
(temperature 0), ``bon:N`` (N sampled trajectories, the explicit RM's argmax of the final states) and
``beam:W1xW2`` (step-level beam search scored by the explicit RM; on ``beam_episodes`` of the ids when
set). An episode's seed is fixed by its identity (task, id), so every method and every resume sees the
same one. Nothing here reads the test split's rewards to choose anything: the RM was trained on held-in
train tasks only, and every hyperparameter was set on train tasks.

Every Best-of-N episode's candidates are kept whole in ``candidates.jsonl`` (trajectory, success, progress,
the explicit RM's scores), so any RM can re-score them offline (:func:`rescore`, ``agentrm rm rescore``).
The RMs of ``eval_rms`` (``implicit``: ``<run>/rm_implicit``; ``judge``: the SFT policy asked "is this
trajectory making progress?") re-score the same candidates: their ``bon:N (<rm>)`` rows are paired with
the explicit one on identical samples.

Writes under ``<run>/eval/``: ``episodes.jsonl`` (one line per (method, task, test id), appended; a re-run
skips them), ``candidates.jsonl``, ``scores/<rm>.jsonl`` (re-scores), ``rm_quality.jsonl`` (RMB pairwise /
Best-of-N accuracy of the explicit RM on held-out tasks' oracle comparison sets), ``results.json``,
``table.md`` and ``done.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.agents.planners import make_planner
from agentrm_gym.core import unwrap_text_env
from agentrm_gym.files import repair_jsonl, write_json_atomic, write_text_atomic
from agentrm_gym.train import table as tab
from agentrm_gym.train.common import begin_stage, open_env, tb_writer
from agentrm_gym.train.config import PipelineConfig
from agentrm_gym.train.context import StageContext, canonical_jsonl, play, policy_dir
from agentrm_gym.train.explore import drop_uncommitted, episode_seed
from agentrm_gym.trajectory import Trajectory, append_jsonl, read_jsonl

EXPLICIT = "explicit"


def eval_ids(ids: list[str], k: int) -> list[str]:
    """``k`` ids evenly spaced over ``ids`` (all of them for ``k <= 0``): a fixed, deterministic subset."""
    if k <= 0 or k >= len(ids):
        return list(ids)
    return [ids[(i * len(ids)) // k] for i in range(k)]


def aggregate(records: list[dict[str, Any]], tasks: list[str], held_in: list[str]) -> dict[str, Any]:
    """Per-method, per-task rates (%) and averages from episode records; ``sample`` and ``pass@N`` rows come
    from the ``candidates`` a Best-of-N record carries (success and progress of each)."""
    rows = tab.episode_rows(records)
    bon = next((m for m in rows if m.startswith("bon")), None)
    if bon is not None:
        n = bon.split(":")[1] if ":" in bon else "N"
        derived = tab.candidate_rows([r for r in records if r["method"] == bon and r.get("candidates")], {}, n)
        order = [m for m in rows if m == "greedy"] + ["sample"] + [m for m in rows if m != "greedy"] + [
            f"pass@{n} (oracle)"]
        rows = {m: rows.get(m) or derived[m] for m in order}
    return tab.summarize(rows, tasks, held_in)


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


def _candidate_record(task: str, task_id: str, method: str, res: Any) -> dict[str, Any]:
    return {"task": task, "task_id": task_id, "method": method,
            "candidates": [{"success": bool(c.success), "progress": float(c.progress),
                            "score": c.meta.get("score"), "trajectory": c.to_dict()} for c in res.candidates]}


def rescore(candidates: Sequence[dict[str, Any]], rm: Any, path: str | Path, desc: str = "rescore",
            identity: str | None = None) -> dict[tuple[str, str], list[float]]:
    """Scores of every saved candidate's final state by ``rm``, cached in ``path`` (JSONL, resumable).

    ``identity`` (e.g. a digest of the RM's files) is kept beside the cache (``<path>.rm.json``): scores
    cached for another RM under the same file name are discarded, not returned as this RM's.
    """
    from tqdm.auto import tqdm

    path = Path(path)
    if identity is not None:
        meta = path.with_name(path.name + ".rm.json")
        try:
            cached_for = json.loads(meta.read_text(encoding="utf-8")).get("rm")
        except (OSError, ValueError, AttributeError):
            cached_for = None
        if cached_for != identity:
            path.unlink(missing_ok=True)  # scores of another RM (or of an unknown one)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(meta, {"rm": identity})
    repair_jsonl(path)
    done = {(r["task"], str(r["task_id"])): r["scores"] for r in read_jsonl(path)} if path.exists() else {}
    for rec in tqdm([c for c in candidates if (c["task"], str(c["task_id"])) not in done], desc=desc, leave=False):
        states = [Trajectory.from_dict(c["trajectory"]).state() for c in rec["candidates"]]
        scores = [float(x) for x in rm.score(states)] if states else []
        append_jsonl(path, [{"task": rec["task"], "task_id": str(rec["task_id"]), "scores": scores}])
        done[(rec["task"], str(rec["task_id"]))] = scores
    return done


def load_extra_rm(name: str, root: Path, cfg: PipelineConfig, ctx: StageContext) -> Any:
    """An RM of ``eval_rms``: ``implicit`` (trained by the train-rm stage), ``judge`` (the SFT policy), or a
    baseline of :data:`agentrm_gym.rm.baselines.BASELINES` (``heuristic``, ``stats-only``, ``encoder-only``:
    :func:`baseline_rm`)."""
    from agentrm_gym.rm.baselines import BASELINES
    from agentrm_gym.rm.format import RMFormat

    if name in BASELINES:
        return baseline_rm(name, root, cfg, ctx.rm)
    if name == "implicit":
        from agentrm_gym.rm import load_reward_model

        return load_reward_model(root / "rm_implicit")
    if name == "judge":
        from agentrm_gym.rm.judge import JudgeRewardModel

        policy = ctx.policy
        return JudgeRewardModel(policy.model, policy.tokenizer, RMFormat(style=cfg.rm_text),
                                max_length=min(512, cfg.context), backbone=policy_dir(root, cfg))
    raise ValueError(f"unknown eval RM {name!r}; use implicit, judge, heuristic, stats-only or encoder-only")


def baseline_rm(name: str, root: Path, cfg: PipelineConfig, explicit: Any) -> Any:
    """A baseline RM of the run: the heads the train-rm stage saved beside the pooled RM (``rm/baselines.json``)
    or, for an RM trained without them, the same heads fitted now on ``extract/pairs.jsonl`` (``encoder-only``
    only for a pooled explicit RM).

    Raises:
        RMLoadError: ``encoder-only`` with an explicit RM that is not pooled (no frozen encoder to reuse).
    """
    from agentrm_gym.rm.baselines import fit_baselines, load_baseline
    from agentrm_gym.rm.card import RMLoadError
    from agentrm_gym.rm.pooled import PooledConfig, PooledValueRewardModel
    from agentrm_gym.train.extract import load_pairs
    from agentrm_gym.train.rm_stage import rm_format

    pooled = isinstance(explicit, PooledValueRewardModel)
    try:
        return load_baseline(name, root / "rm", explicit)
    except RMLoadError:
        if name == "encoder-only" and not pooled:
            raise
    records = load_pairs(root)
    fmt = explicit.fmt if pooled else rm_format(cfg)
    texts = [fmt.text(r["state"]) for r in records]
    embeddings = explicit.embed_texts(texts).astype(np.float64) if name == "encoder-only" else None
    pooled_cfg = PooledConfig(alphas=list(cfg.rm_alphas), cv=cfg.rm_cv, seed=cfg.seed)
    fitted = fit_baselines(records, texts, embeddings, pooled_cfg, fmt)
    with tempfile.TemporaryDirectory() as tmp:
        write_json_atomic(Path(tmp) / "baselines.json", fitted)
        return load_baseline(name, tmp, explicit if pooled else None)


def rm_identity(rm: Any) -> str:
    """A digest of a baseline RM's head (its re-scores are cached under its name: another head discards them)."""
    weights = getattr(rm, "weights", None)
    head = [] if weights is None else [float(x) for x in np.asarray(weights).ravel()]
    blob = json.dumps([getattr(rm, "kind", ""), getattr(rm, "backbone", ""), head, getattr(rm, "bias", None),
                       getattr(rm, "scale", None), getattr(rm, "tie_break", None)]
                      + ([rm.seen] if getattr(rm, "seen", None) else []))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_results(cfg: PipelineConfig, out: Path, extra_scores: dict[str, Any] | None = None,
                  notes: dict[str, str] | None = None, quality: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Table 1 (rows, per-task rates, averages) and the paired gains from the files under ``out``."""
    records = list(read_jsonl(out / "episodes.jsonl")) if (out / "episodes.jsonl").exists() else []
    cands = list(read_jsonl(out / "candidates.jsonl")) if (out / "candidates.jsonl").exists() else []
    tasks, held_in = list(cfg.eval_tasks), list(cfg.rm_tasks)
    played = tab.episode_rows(records)
    scores = {EXPLICIT: {(c["task"], str(c["task_id"])): [x["score"] for x in c["candidates"]] for c in cands}}
    scores.update(extra_scores or {})
    derived = tab.candidate_rows(cands, scores, cfg.bon_n) if cands else {}
    n = cfg.bon_n
    order = ["greedy", "sample", f"bon:{n} ({EXPLICIT})"] + [f"bon:{n} ({k})" for k in scores if k != EXPLICIT]
    order += [m for m in played if m.startswith("beam")] + [f"pass@{n} (oracle)"]
    rows = {m: (derived.get(m) or played.get(m)) for m in order if derived.get(m) or played.get(m)}
    rows.update({m: v for m, v in played.items() if m not in rows and not m.startswith("bon")})
    gain_table = tab.gains(rows, tasks, held_in, resamples=cfg.bootstrap, seed=cfg.seed)
    explicit = f"bon:{n} ({EXPLICIT})"
    if explicit in rows:  # the explicit RM against each other RM on the same candidates
        for other in [m for m in rows if m.startswith(f"bon:{n} (") and m != explicit]:
            gain_table.setdefault(explicit, {})[other] = tab.paired_gain(rows[explicit], rows[other], tasks,
                                                                         held_in, cfg.bootstrap, cfg.seed)
    seconds = {m: round(sum(r["cost"]["wall_seconds"] for r in records if r["method"] == m), 1)
               for m in cfg.eval_methods}
    return {"table": tab.summarize(rows, tasks, held_in), "gains": gain_table, "rm_quality": quality or [],
            "rm_cv": rm_cv_figures(out.parent / "rm"), "notes": notes or {}, "episodes": len(records),
            "eval_episodes_per_task": cfg.eval_episodes, "method_seconds": seconds}


def rm_cv_figures(rm_dir: Path) -> dict[str, Any]:
    """The explicit RM's cross-validation on held-in train pairs, from its card: every candidate's and every
    baseline's task-mean / pooled pairwise accuracy and Best-of-N lift (empty for an RM without them)."""
    try:
        card = json.loads((rm_dir / "agentrm_rm.json").read_text(encoding="utf-8"))
        metrics, training = card.get("metrics") or {}, card.get("training") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(metrics, dict) or not (metrics.get("candidates") or metrics.get("baselines")):
        return {}
    keys = ("alpha", "task_pairwise_accuracy", "pairwise_accuracy", "bon_lift")
    chosen = {k: metrics.get(k) for k in keys}
    cv = metrics.get("cv")
    if cv == "task" and len(training.get("tasks") or []) < 2:
        cv = "task_id"  # one held-in task: pooled.cv_folds splits its task ids
    candidates = {_candidate_label(k): v for k, v in (metrics.get("candidates") or {"(the RM)": chosen}).items()}
    selectors = {name: metrics[key] for name, key in (("unseen", "selector"), ("seen", "selector_seen"))
                 if isinstance(metrics.get(key), dict)}
    return {"cv": cv, "folds": metrics.get("cv_folds"), "chosen": _candidate_label(metrics.get("chosen") or ""),
            "candidates": candidates, "baselines": metrics.get("baselines") or {}, "selectors": selectors}


def _candidate_label(name: str) -> str:
    """A candidate's name without its directory (``<run>/sft/policy+stats`` -> ``policy+stats``): results.json
    names no path of the machine that trained the RM."""
    base, plus, stats = name.partition("+")
    return Path(base).name + plus + stats if base else name


def episode_job(ctx: StageContext, job: tuple[str, str, str]) -> dict[str, Any]:
    """One evaluation episode ``(task, method, task_id)`` (a worker's job): its episode record and, for
    Best-of-N, the record of its candidates."""
    task, method, task_id = job
    cfg = ctx.cfg
    planner = make_planner(method, ctx.policy, None if method == "greedy" else ctx.rm,
                           temperature=None if method == "greedy" else cfg.temperature,
                           max_steps=cfg.eval_max_steps or None)
    res = planner.run(ctx.env(task, "test"), task_id, seed=episode_seed(cfg.seed, task, task_id))
    traj = res.trajectory
    episode = {"method": method, "task": task, "task_id": task_id, "success": bool(traj.success),
               "progress": float(traj.progress), "steps": len(traj.steps),
               "actions": [s.action for s in traj.steps], "cost": res.cost.to_dict(),
               "candidates": [{"success": bool(c.success), "progress": float(c.progress),
                               "score": c.meta.get("score")} for c in res.candidates]}
    return {"episode": episode,
            "candidates": _candidate_record(task, task_id, method, res) if method.startswith("bon") else None}


def run_evaluate(cfg: PipelineConfig, root: str | Path) -> dict[str, Any]:
    """Play the evaluation episodes (resumable; ``cfg.workers`` processes), re-score the candidates, write
    the results and tables."""
    stage = begin_stage(root, "eval", threads=cfg.threads)
    if stage.done:
        return stage.summary
    root = Path(root)
    out = stage.out
    ep_path, cand_path = out / "episodes.jsonl", out / "candidates.jsonl"
    repair_jsonl(ep_path)
    repair_jsonl(cand_path)
    done = {(r["method"], r["task"], str(r["task_id"])) for r in read_jsonl(ep_path)} if ep_path.exists() else set()
    # the episode line is the commit point: candidates of an episode killed before it are played again
    drop_uncommitted(cand_path, done, key=lambda r: (r["method"], r["task"], str(r["task_id"])))
    ctx = StageContext(cfg.to_dict(), root)
    notes: dict[str, str] = {}
    order: list[tuple[str, str, str]] = []

    def jobs_of(task: str) -> list[tuple[str, str, str]]:
        env, why = ctx.try_env(task, "test")
        if env is None:
            notes[task] = why
            return []
        ids = eval_ids([str(i) for i in unwrap_text_env(env).task_ids("test")], cfg.eval_episodes)
        mine = {m: eval_ids(ids, cfg.beam_episodes) if m.startswith("beam") and cfg.beam_episodes else ids
                for m in cfg.eval_methods}
        jobs = [(task, m, i) for m in cfg.eval_methods for i in mine[m]]
        order.extend(jobs)
        return [j for j in jobs if (j[1], j[0], j[2]) not in done]

    try:
        for _, res in play(ctx, episode_job, cfg.eval_tasks, jobs_of, "eval"):
            if res["candidates"] is not None:  # the candidates first: an episode line means both exist
                append_jsonl(cand_path, [res["candidates"]])
            append_jsonl(ep_path, [res["episode"]])
        ctx.close_envs()
        canonical_jsonl(ep_path, lambda r: (r["task"], r["method"], str(r["task_id"])), order)
        canonical_jsonl(cand_path, lambda r: (r["task"], r["method"], str(r["task_id"])), order)
        result = _finish(cfg, ctx, out, notes)
    finally:
        ctx.close()
    return stage.finish(result)


def _finish(cfg: PipelineConfig, ctx: StageContext, out: Path, notes: dict[str, str]) -> dict[str, Any]:
    """Re-score the candidates with the extra RMs, check RM quality, write results.json, table.md, TB."""
    root = ctx.root
    cand_path = out / "candidates.jsonl"
    cands = list(read_jsonl(cand_path)) if cand_path.exists() else []
    from agentrm_gym.rm.baselines import BASELINES
    from agentrm_gym.rm.card import RMLoadError

    extra = {}
    for name in cfg.eval_rms:
        try:
            rm = load_extra_rm(name, root, cfg, ctx)
        except RMLoadError as exc:
            if name not in BASELINES:
                raise
            notes[f"bon:{cfg.bon_n} ({name})"] = f"not evaluated: {exc}"
            continue
        extra[name] = rescore(cands, rm, out / "scores" / f"{name}.jsonl", desc=f"rescore {name}",
                              identity=rm_identity(rm) if name in BASELINES else None)
    quality = _rm_quality(cfg, ctx.rm, out) if cfg.rm_eval_episodes else []
    results = build_results(cfg, out, extra, notes, quality)
    writer = tb_writer(root, "eval")
    if writer is not None:
        for m, row in results["table"].items():
            tag = m.replace(" ", "_").replace("(", "").replace(")", "").replace("@", "_at_")
            for k, v in row["averages"].items():
                if not math.isnan(v):
                    writer.add_scalar(f"charts/{tag}/{k}", v, 0)
        writer.close()
    write_json_atomic(out / "results.json", results)  # strict JSON: NaN -> null (files.strict_json)
    tasks = list(cfg.eval_tasks)
    write_text_atomic(out / "table.md", tab.render_markdown(results, tasks, list(cfg.rm_tasks)))
    return {"results": str(out / "results.json"), "table": str(out / "table.md"),
            "episodes": results["episodes"], "method_seconds": results["method_seconds"]}


def render_markdown(results: dict[str, Any], tasks: list[str], held_in: list[str]) -> str:
    """The tables of a run as Markdown (see :func:`agentrm_gym.train.table.render_markdown`)."""
    return tab.render_markdown(results, tasks, held_in)
