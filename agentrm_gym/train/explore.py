"""Stage 3, explore: MCTS with the SFT policy on train tasks of the held-in tasks; trees as JSONL.

Per task, ``explore_trees`` train ids (the ones after the expert's, so the policy has not cloned them)
are searched with :class:`~agentrm_gym.agents.planners.MCTS` (as in AgentRM, arXiv 2502.18407: UCT
V(c) + c sqrt(2 ln N(parent) / N(c)), k sampled actions per expansion with duplicates merged, a policy
rollout to the end per new node, outcome R = final progress, visit-weighted back-up). The outcome is
the env's own progress of the rollout's final state: exploration runs on train tasks, where that
reward is what AgentRM uses to label states.

Writes under ``<run>/explore/``:

* ``trees/<task>__<task_id>.jsonl`` - one node a line (:meth:`MCTSTree.to_jsonl`), written atomically;
* ``rollouts.jsonl`` - every rollout's final trajectory (for TD(lambda) / Monte-Carlo labels);
* ``index.jsonl`` - one line per finished tree (nodes, best outcome, cost); a re-run skips these. The
  index is the commit point: a tree's rollouts are appended before its index line, so on resume the
  rollout lines of trees the index does not hold (a run killed in between) are dropped and the tree
  is searched again (:func:`drop_uncommitted`);
* ``groups.jsonl`` - sampled groups, the RM's main data: on ``explore_groups`` further train ids per
  held-in task, ``eval_n`` trajectories sampled exactly as Best-of-N samples them at evaluation (same
  temperature, same step cap), every candidate's full trajectory and final progress. The RM later ranks
  the final states of such groups, so it is trained on the states it will rank;
* ``done.json`` - totals.

Seeds come from a task id's identity (:func:`episode_seed`), not its position in a to-do list, so a
resumed stage plays the same episodes as an uninterrupted one.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.agents.planners import MCTS, BestOfN, Candidate
from agentrm_gym.core import unwrap_text_env
from agentrm_gym.files import repair_jsonl, write_bytes_atomic, write_jsonl_atomic
from agentrm_gym.train.common import begin_stage, tb_writer
from agentrm_gym.train.config import CorruptRunFile, PipelineConfig
from agentrm_gym.train.context import StageContext, canonical_jsonl, play
from agentrm_gym.trajectory import append_jsonl, read_jsonl


class RecordingMCTS(MCTS):
    """:class:`MCTS` that keeps the final state of every rollout (``self.rollout_finals``)."""

    def _search(self, root: Candidate) -> Any:
        self.rollout_finals: list[Candidate] = []
        return super()._search(root)

    def _rollout(self, starts: list[Candidate]) -> list[Candidate]:
        finals = super()._rollout(starts)
        self.rollout_finals.extend(finals)
        return finals


def episode_seed(seed: int, task: str, task_id: str) -> int:
    """A seed fixed by the run seed and the episode's identity (stable across resumes and orderings)."""
    return (seed * 1_000_003 + zlib.crc32(f"{task}/{task_id}".encode())) % (2**31 - 1)


def drop_uncommitted(path: Path, committed: set[Any], key: Any = None) -> int:
    """Rewrite ``path`` (JSONL) without the lines whose ``key(record)`` (default ``(task, task_id)``) is not
    in ``committed`` (the commit point's keys: explore's index, evaluate's episodes); returns how many lines
    were dropped. Kept lines are kept byte for byte."""
    if not path.exists():
        return 0
    lines = path.read_bytes().splitlines(keepends=True)
    kept = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            k = key(rec) if key is not None else (rec["task"], str(rec["task_id"]))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CorruptRunFile(f"{path}:{i + 1}: damaged record ({type(exc).__name__}: {exc}); delete "
                                 f"{path.parent} to redo the stage") from exc
        if k in committed:
            kept.append(line)
    if len(kept) != len(lines):
        write_bytes_atomic(path, b"".join(kept))
    return len(lines) - len(kept)


def _no_scores(states: list[Any]) -> np.ndarray:
    return np.zeros(len(states))


def group_job(ctx: StageContext, job: tuple[str, str]) -> dict[str, Any]:
    """One sampled group ``(task, task_id)`` (a worker's job): ``bon_n`` trajectories as Best-of-N samples them."""
    task, task_id = job
    cfg = ctx.cfg
    planner = BestOfN(ctx.policy, _no_scores, n=cfg.bon_n, temperature=cfg.temperature,
                      max_steps=cfg.eval_max_steps or None)
    seed = episode_seed(cfg.seed, task, task_id)
    result = planner.run(ctx.env(task, "train"), task_id, seed=seed)
    cands = [{"progress": float(c.progress), "success": bool(c.success), "trajectory": c.to_dict()}
             for c in result.candidates]
    return {"task": task, "task_id": task_id, "seed": seed, "n": cfg.bon_n, "temperature": cfg.temperature,
            "candidates": cands, "cost": result.cost.to_dict()}


def sample_groups(cfg: PipelineConfig, ctx: StageContext, writer: Any = None) -> list[str]:
    """Append one record per sampled group to ``explore/groups.jsonl`` (resumable); returns notes."""
    path = ctx.root / "explore" / "groups.jsonl"
    repair_jsonl(path)
    finished = {(r["task"], str(r["task_id"])) for r in read_jsonl(path)} if path.exists() else set()
    notes: list[str] = []
    order: list[tuple[str, str]] = []

    def jobs_of(task: str) -> list[tuple[str, str]]:
        if cfg.group_count(task) <= 0:
            return []
        env, why = ctx.try_env(task, "train")
        if env is None:
            notes.append(why)
            return []
        ids = cfg.ordered_train_ids(unwrap_text_env(env).task_ids("train"))
        skip = cfg.expert_count(task) + cfg.explore_trees
        ids = (ids[skip:] if len(ids) > skip else ids)[: cfg.group_count(task)]
        order.extend((task, i) for i in ids)
        return [(task, i) for i in ids if (task, i) not in finished]

    for _, rec in play(ctx, group_job, cfg.rm_tasks, jobs_of, "sample groups"):
        append_jsonl(path, [rec])
        if writer is not None:
            writer.add_scalar(f"explore/{rec['task']}_group_mean_progress",
                              float(np.mean([c["progress"] for c in rec["candidates"]])), len(finished))
        finished.add((rec["task"], rec["task_id"]))
    canonical_jsonl(path, _key, order)
    return notes


def _key(rec: dict[str, Any]) -> tuple[str, str]:
    return rec["task"], str(rec["task_id"])


def tree_job(ctx: StageContext, job: tuple[str, str]) -> dict[str, Any]:
    """One MCTS tree ``(task, task_id)`` (a worker's job): its node records, rollouts and index line."""
    task, task_id = job
    cfg = ctx.cfg
    planner = RecordingMCTS(ctx.policy, None, iterations=cfg.mcts_iterations, k=cfg.mcts_k, c=cfg.mcts_c,
                            rollouts=cfg.mcts_rollouts, temperature=cfg.temperature, max_steps=cfg.explore_max_steps)
    result = planner.run(ctx.env(task, "train"), task_id, seed=episode_seed(cfg.seed, task, task_id))
    rollouts = [{"task": task, "task_id": task_id, "success": c.success, "progress": c.progress,
                 "steps": [s.__dict__ for s in c.state.steps], "goal": c.state.goal,
                 "observation": c.state.observation} for c in planner.rollout_finals]
    outcomes = [c.progress for c in planner.rollout_finals]
    index = {"task": task, "task_id": task_id, "tree": f"trees/{task}__{task_id}.jsonl",
             "nodes": len(result.tree.nodes), "root_value": result.tree.nodes[0].V,
             "best_outcome": max(outcomes, default=0.0),
             "rollout_success": sum(c.success for c in planner.rollout_finals) / max(1, len(outcomes)),
             "cost": result.cost.to_dict()}
    return {"nodes": result.tree.to_records(), "rollouts": rollouts, "index": index}


def run_explore(cfg: PipelineConfig, root: str | Path) -> dict[str, Any]:
    """Build the MCTS trees (resumable per tree); returns the stage summary."""
    stage = begin_stage(root, "explore", threads=cfg.threads, mkdir=False)
    if stage.done:
        return stage.summary
    out = stage.out
    (out / "trees").mkdir(parents=True, exist_ok=True)
    index = out / "index.jsonl"
    repair_jsonl(index)
    repair_jsonl(out / "rollouts.jsonl")
    finished = {(r["task"], str(r["task_id"])) for r in read_jsonl(index)} if index.exists() else set()
    drop_uncommitted(out / "rollouts.jsonl", finished)  # the index is the commit point
    ctx = StageContext(cfg.to_dict(), root)
    writer = tb_writer(root, "explore")
    notes: list[str] = []
    n_trees = len(finished)
    order: list[tuple[str, str]] = []

    def jobs_of(task: str) -> list[tuple[str, str]]:
        env, why = ctx.try_env(task, "train")
        if env is None:
            notes.append(why)
            return []
        ids = cfg.ordered_train_ids(unwrap_text_env(env).task_ids("train"))
        ids = (ids[cfg.expert_count(task):] or ids)[: cfg.explore_trees]
        order.extend((task, i) for i in ids)
        return [(task, i) for i in ids if (task, i) not in finished]

    try:
        for _, res in play(ctx, tree_job, cfg.rm_tasks, jobs_of, "explore"):
            rec = res["index"]
            write_jsonl_atomic(out / rec["tree"], res["nodes"])
            append_jsonl(out / "rollouts.jsonl", res["rollouts"])
            append_jsonl(index, [rec])  # last: the commit point of the tree
            n_trees += 1
            if writer is not None:
                writer.add_scalar(f"explore/{rec['task']}_root_value", rec["root_value"], n_trees)
                writer.add_scalar("explore/nodes", rec["nodes"], n_trees)
        canonical_jsonl(out / "rollouts.jsonl", _key, order)
        canonical_jsonl(index, _key, order)
        notes += sample_groups(cfg, ctx, writer)
    finally:
        ctx.close()
    if writer is not None:
        writer.close()
    recs = list(read_jsonl(index)) if index.exists() else []
    groups = list(read_jsonl(out / "groups.jsonl")) if (out / "groups.jsonl").exists() else []
    per_task = {}
    for task in sorted({r["task"] for r in recs}):
        rs = [r for r in recs if r["task"] == task]
        per_task[task] = {"trees": len(rs), "nodes": sum(r["nodes"] for r in rs),
                          "mean_root_value": sum(r["root_value"] for r in rs) / len(rs),
                          "mean_rollout_success": sum(r["rollout_success"] for r in rs) / len(rs),
                          "seconds": round(sum(r["cost"]["wall_seconds"] for r in rs), 1)}
    for task in sorted({g["task"] for g in groups}):
        gs = [g for g in groups if g["task"] == task]
        per_task.setdefault(task, {}).update({
            "groups": len(gs),
            "group_mean_progress": float(np.mean([np.mean([c["progress"] for c in g["candidates"]]) for g in gs])),
            "group_best_progress": float(np.mean([max(c["progress"] for c in g["candidates"]) for g in gs])),
            "group_seconds": round(sum(g["cost"]["wall_seconds"] for g in gs), 1)})
    return stage.finish({"trees": len(recs), "groups": len(groups), "per_task": per_task, "notes": notes})
