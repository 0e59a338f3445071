"""Stage 3, explore: MCTS with the SFT policy on train tasks of the held-in tasks; trees as JSONL.

Per task, ``explore_trees`` train ids (the ones after the expert's, so the policy has not cloned them)
are searched with :class:`~agentrm_gym.agents.planners.MCTS` (DESIGN.md section 5: UCT
V(c) + c sqrt(2 ln N(parent) / N(c)), k sampled actions per expansion with duplicates merged, a policy
rollout to the end per new node, outcome R = final progress, visit-weighted back-up). The outcome is
the env's own progress of the rollout's final state: exploration runs on train tasks, where that
reward is what AgentRM uses to label states.

Writes under ``<run>/explore/``:

* ``trees/<task>__<task_id>.jsonl`` - one node a line (:meth:`MCTSTree.to_jsonl`), written atomically;
* ``rollouts.jsonl`` - every rollout's final trajectory (for TD(lambda) / Monte-Carlo labels);
* ``index.jsonl`` - one line per finished tree (nodes, best outcome, cost); a re-run skips these;
* ``done.json`` - totals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from agentrm_gym.agents.planners import MCTS, Candidate
from agentrm_gym.core import unwrap_text_env
from agentrm_gym.files import repair_jsonl
from agentrm_gym.train.common import begin_stage, open_env, tb_writer
from agentrm_gym.train.config import PipelineConfig
from agentrm_gym.train.sft_stage import make_pipeline_policy
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


def policy_dir(root: str | Path, cfg: PipelineConfig) -> str:
    """The policy of the run: ``cfg.policy`` or the SFT stage's output."""
    return cfg.policy or str(Path(root) / "sft" / "policy")


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
    policy = make_pipeline_policy(policy_dir(root, cfg), cfg, seed=cfg.seed)
    writer = tb_writer(root, "explore")
    notes: list[str] = []
    n_trees = len(finished)
    for task in cfg.rm_tasks:
        env, why = open_env(task, "train")
        if env is None:
            notes.append(why)
            continue
        try:
            n_expert = cfg.expert_count(task)
            ids = unwrap_text_env(env).task_ids("train")
            ids = (ids[n_expert:] or ids)[: cfg.explore_trees]
            todo = [i for i in ids if (task, str(i)) not in finished]
            for k, task_id in enumerate(tqdm(todo, desc=f"explore {task}", leave=False)):
                planner = RecordingMCTS(policy, None, iterations=cfg.mcts_iterations, k=cfg.mcts_k, c=cfg.mcts_c,
                                        rollouts=cfg.mcts_rollouts, temperature=cfg.temperature,
                                        max_steps=cfg.explore_max_steps)
                result = planner.run(env, task_id, seed=cfg.seed + k)
                tree_path = out / "trees" / f"{task}__{task_id}.jsonl"
                result.tree.to_jsonl(tree_path)  # atomic
                append_jsonl(out / "rollouts.jsonl", [
                    {"task": task, "task_id": str(task_id), "success": c.success, "progress": c.progress,
                     "steps": [s.__dict__ for s in c.state.steps], "goal": c.state.goal,
                     "observation": c.state.observation} for c in planner.rollout_finals])
                outcomes = [c.progress for c in planner.rollout_finals]
                rec = {"task": task, "task_id": str(task_id), "tree": str(tree_path.relative_to(out)),
                       "nodes": len(result.tree.nodes), "root_value": result.tree.nodes[0].V,
                       "best_outcome": max(outcomes, default=0.0),
                       "rollout_success": sum(c.success for c in planner.rollout_finals) / max(1, len(outcomes)),
                       "cost": result.cost.to_dict()}
                append_jsonl(index, [rec])
                n_trees += 1
                if writer is not None:
                    writer.add_scalar(f"explore/{task}_root_value", rec["root_value"], n_trees)
                    writer.add_scalar("explore/nodes", rec["nodes"], n_trees)
        finally:
            env.close()
    if writer is not None:
        writer.close()
    recs = list(read_jsonl(index)) if index.exists() else []
    per_task = {}
    for task in sorted({r["task"] for r in recs}):
        rs = [r for r in recs if r["task"] == task]
        per_task[task] = {"trees": len(rs), "nodes": sum(r["nodes"] for r in rs),
                          "mean_root_value": sum(r["root_value"] for r in rs) / len(rs),
                          "mean_rollout_success": sum(r["rollout_success"] for r in rs) / len(rs),
                          "seconds": round(sum(r["cost"]["wall_seconds"] for r in rs), 1)}
    return stage.finish({"trees": len(recs), "per_task": per_task, "notes": notes})
