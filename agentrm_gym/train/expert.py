"""Stage 1, expert data: each task's oracle plays train tasks; episodes become SFT chat data.

Writes under ``<run>/expert/``:

* ``trajectories.jsonl`` - one :class:`~agentrm_gym.trajectory.Trajectory` a line, appended as episodes
  finish (a re-run skips the ``(task, task_id)`` pairs already there);
* ``sft.jsonl`` - the same episodes as ETO/ShareGPT records (:func:`~agentrm_gym.agents.to_sharegpt` with
  the pipeline's compact prompt);
* ``done.json`` - counts per task and the oracle's success rate.

AgentRM fine-tunes an 8B general model on held-in data only; our tiny policy starts from nothing, so it
sees a few oracle episodes of every task's TRAIN split to learn each action grammar (never a test task).
With probability ``expert_noise`` a step is a random non-oracle admissible action instead (the oracle
then continues from the state it left), so the cloned policy is imperfect and its samples differ. The
noise of an episode is seeded by the episode's identity (:func:`~agentrm_gym.train.explore.episode_seed`),
not its position in the to-do list, so a resumed stage plays the same episodes as an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.agents.prompts import CompactPromptBuilder, to_sharegpt
from agentrm_gym.agents.runner import initial_state, step_record, to_trajectory
from agentrm_gym.core import CHECK_VALID_ACTIONS, unwrap_text_env
from agentrm_gym.files import repair_jsonl, write_jsonl_atomic
from agentrm_gym.train.common import begin_stage, short_thought, tb_writer
from agentrm_gym.train.config import PipelineConfig
from agentrm_gym.train.context import StageContext, canonical_jsonl, play
from agentrm_gym.train.explore import episode_seed
from agentrm_gym.trajectory import Trajectory, append_jsonl, read_jsonl


def noisy_expert_episode(env: Any, task_id: str, seed: int, noise: float, max_steps: int,
                         rng: np.random.Generator) -> Trajectory:
    """One episode of the oracle with epsilon-noise; thoughts from :func:`short_thought`.

    A detour after which the oracle has no action (an oracle that only knows a fixed gold path) is undone
    by a snapshot restore, so noise never ends an episode early.
    """
    obs, info = env.reset(seed=seed, options={"task_id": task_id})
    state = initial_state(env, obs, info)
    base = unwrap_text_env(env)
    noisy = 0
    for _ in range(max_steps):
        action = base.expert_action()
        if action is None:
            break
        if noise > 0 and rng.random() < noise:
            alts = [a for a in (base.admissible_actions() or [])
                    if a != action and a.strip().lower() != CHECK_VALID_ACTIONS]
            if alts:
                snap = base.snapshot()
                alt = alts[int(rng.integers(len(alts)))]
                obs, reward, term, trunc, info = env.step(alt)
                if term or trunc or base.expert_action() is not None:
                    noisy += 1
                    state = state.extend(step_record(short_thought(alt), alt, obs, reward, info))
                    if term or trunc:
                        break
                    continue
                base.restore(snap)  # an oracle that cannot recover from the detour (a fixed gold path)
        obs, reward, term, trunc, info = env.step(action)
        state = state.extend(step_record(short_thought(action), action, obs, reward, info))
        if term or trunc:
            break
    return to_trajectory(state, info["success"], info["progress"], seed=seed, policy="oracle",
                         sampling={"expert_noise": noise}, meta={"noisy_steps": noisy})


def expert_job(ctx: StageContext, job: tuple[str, str]) -> dict[str, Any]:
    """One expert episode ``(task, task_id)`` on ``ctx``'s train env (a worker's job): its trajectory."""
    task, task_id = job
    cfg = ctx.cfg
    # seeded by the episode's identity: a resumed run plays the episodes an uninterrupted one plays
    rng = np.random.default_rng([episode_seed(cfg.seed, task, task_id), 17])
    env = ctx.env(task, "train")
    return noisy_expert_episode(env, task_id, cfg.seed, cfg.expert_noise, cfg.expert_max_steps, rng).to_dict()


def run_expert(cfg: PipelineConfig, root: str | Path) -> dict[str, Any]:
    """Play the expert episodes (resumable; ``cfg.workers`` processes) and write the ShareGPT file; returns
    the stage summary."""
    stage = begin_stage(root, "expert")
    if stage.done:
        return stage.summary
    out = stage.out
    traj_path = out / "trajectories.jsonl"
    repair_jsonl(traj_path)
    done = {(r["task"], str(r["task_id"])) for r in read_jsonl(traj_path)} if traj_path.exists() else set()
    notes: list[str] = []
    writer = tb_writer(root, "expert")
    ctx = StageContext(cfg.to_dict(), root)
    order: list[tuple[str, str]] = []

    def jobs_of(task: str) -> list[tuple[str, str]]:
        env, why = ctx.try_env(task, "train")
        if env is None:
            notes.append(why)
            return []
        ids = [(task, i) for i in cfg.ordered_train_ids(unwrap_text_env(env).task_ids("train"))[: cfg.expert_count(task)]]
        order.extend(ids)
        return [i for i in ids if i not in done]

    try:
        for _, traj in play(ctx, expert_job, cfg.sft_tasks, jobs_of, "expert"):
            append_jsonl(traj_path, [traj])
    finally:
        ctx.close()
    canonical_jsonl(traj_path, lambda r: (r["task"], str(r["task_id"])), order)  # the same file for any workers
    trajs = [Trajectory.from_dict(r) for r in read_jsonl(traj_path)] if traj_path.exists() else []
    builder = CompactPromptBuilder()
    write_jsonl_atomic(out / "sft.jsonl", [to_sharegpt(t, builder, f"{t.task}_{t.task_id}") for t in trajs])
    per_task: dict[str, dict[str, float]] = {}
    for task in sorted({t.task for t in trajs}):
        ts = [t for t in trajs if t.task == task]
        per_task[task] = {"episodes": len(ts), "success_rate": 100 * float(np.mean([t.success for t in ts])),
                          "mean_steps": float(np.mean([len(t.steps) for t in ts]))}
        if writer is not None:
            writer.add_scalar(f"expert/{task}_success_rate", per_task[task]["success_rate"], 0)
    if writer is not None:
        writer.close()
    return stage.finish({"episodes": len(trajs), "per_task": per_task, "notes": notes})
