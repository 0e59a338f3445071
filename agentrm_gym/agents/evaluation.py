"""The evaluation engine: run a policy with a planner on a task split, write trajectories and rates.

Used by ``agentrm eval`` (:mod:`agentrm_gym.cli.evaluate`, a thin wrapper). Episodes are played by
:func:`agentrm_gym.parallel.run_jobs`, the one episode engine of the package (the pipeline's stages play
theirs through it too): in this process, on worker processes or on Ray actors, each with an
:class:`EvalWorker`.

:func:`run_eval` writes, under ``cfg.out`` (default ``runs/<task>__eval__<method>__<seed>__<time>``):

* ``episodes.jsonl`` - one trajectory record a line (:class:`agentrm_gym.trajectory.Trajectory`;
  ``meta.cost`` holds the planner's cost counters), appended as episodes finish;
* ``results.json`` - success rate and progress rate (in %) and the mean cost per episode;
* ``tb/`` - TensorBoard scalars ``charts/success_rate``, ``charts/progress_rate`` (and per-episode
  ``episode/progress``), when TensorBoard is installed.

``resume`` skips the episodes already in ``episodes.jsonl`` (a line cut short by an interruption is
dropped and its episode run again). Search methods need values: ``rm`` (an RM spec of
:func:`agentrm_gym.rm.make_reward_model`) or ``scorer="progress"`` (the env's own progress rate: an oracle
upper bound, not a deployable agent) or ``scorer="oracle"`` (the task's own oracle scorer, ``TaskSpec.scorer``,
e.g. Maze's BFS distance; ``maze-distance`` is its older name).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.files import append_jsonl, read_jsonl, rewrite_jsonl, write_json_atomic
from agentrm_gym.tblog import summary_writer

SCORERS = ("progress", "oracle")


class EvalError(ValueError):
    """A bad combination of eval options (the message says what to pass instead)."""


@dataclass
class EvalConfig:
    """Options of one evaluation run (the same fields as the CLI)."""

    env: str = "Maze"
    policy: str = "oracle"
    method: str = "greedy"
    rm: str | None = None
    scorer: str | None = None
    split: str = "test"
    episodes: int | None = None
    out: str | None = None
    resume: bool = False
    overwrite: bool = False
    seed: int = 0
    temperature: float | None = None
    max_new_tokens: int = 64
    max_steps: int | None = None
    workers: int = 1
    ray: str = ""
    env_url: str = ""
    env_api_key: str | None = None

    def make_env(self) -> Any:
        """The env episodes play on: in this process, or a session of the env server at ``env_url``
        (``agentrm serve env``; the same episodes as in process for the same seeds)."""
        from agentrm_gym.registry import make, make_remote

        if self.env_url:
            return make_remote(self.env_url, self.env, split=self.split, api_key=self.env_api_key)
        return make(self.env, split=self.split)


def load_scorer(cfg: EvalConfig) -> Any:
    """The scorer a search method uses: the reward model of ``cfg.rm``, a named oracle scorer, or ``None``."""
    if cfg.rm and cfg.scorer:
        raise EvalError("pass either --rm or --scorer, not both")
    if cfg.rm:
        from agentrm_gym.rm import make_reward_model

        return make_reward_model(cfg.rm)
    if cfg.scorer == "progress":
        from agentrm_gym.agents.scorers import ProgressScorer

        return ProgressScorer()
    if cfg.scorer in ("oracle", "maze-distance"):
        from agentrm_gym.registry import get_spec, task_scorer

        if cfg.scorer == "maze-distance" and get_spec(cfg.env).name != "Maze":
            raise EvalError("--scorer maze-distance is Maze's oracle; use --scorer oracle for the task's own")
        scorer = task_scorer(cfg.env)  # the task's own oracle scorer, found through its TaskSpec
        if scorer is None:
            raise EvalError(f"{cfg.env} has no oracle scorer (its TaskSpec.scorer is empty); use --scorer progress")
        return scorer
    if cfg.scorer:
        raise EvalError(f"unknown --scorer {cfg.scorer!r}; use one of {', '.join(SCORERS)}")
    if cfg.method.split(":")[0] != "greedy":
        raise EvalError(f"--method {cfg.method} ranks states: pass --rm PATH (a reward model) or "
                        "--scorer progress (the env's own progress, an oracle upper bound)")
    return None


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Success and progress rates (%) and the mean cost per episode of trajectory records."""
    if not records:
        return {"episodes": 0, "success_rate": 0.0, "progress_rate": 0.0, "cost_per_episode": {}}
    costs = [r.get("meta", {}).get("cost", {}) for r in records]
    keys = sorted({k for c in costs for k in c})
    return {
        "episodes": len(records),
        "success_rate": 100.0 * float(np.mean([bool(r["success"]) for r in records])),
        "progress_rate": 100.0 * float(np.mean([float(r["progress"]) for r in records])),
        "cost_per_episode": {k: float(np.mean([c.get(k, 0.0) for c in costs])) for k in keys},
    }


def _eval_policy(cfg: EvalConfig) -> Any:
    from agentrm_gym.agents.factory import make_policy

    return make_policy(cfg.policy, seed=cfg.seed, **(
        {"max_new_tokens": cfg.max_new_tokens} if cfg.policy not in ("oracle", "random")
        and not cfg.policy.startswith("noisy:") else {}))


class EvalWorker:
    """What plays :func:`run_eval`'s episodes (in this process, in each worker process or on each Ray actor):
    its own env, policy and planner, built once."""

    def __init__(self, cfg: dict[str, Any], planner_factory: Callable[..., Any] | None = None):
        from agentrm_gym.agents.planners import make_planner

        self.cfg = EvalConfig(**cfg)
        self.env = self.cfg.make_env()
        self.policy = _eval_policy(self.cfg)
        self.planner = (planner_factory or make_planner)(self.cfg.method, self.policy, load_scorer(self.cfg),
                                                         temperature=self.cfg.temperature,
                                                         max_steps=self.cfg.max_steps)

    def close(self) -> None:
        self.env.close()
        self.policy.close()


def eval_job(worker: EvalWorker, job: tuple[int, str]) -> Any:
    """Episode ``index`` of ``task_id`` (seed ``seed + index``, as in one process): its trajectory."""
    index, task_id = job
    return worker.planner.run(worker.env, task_id, seed=worker.cfg.seed + index).trajectory


def run_eval(cfg: EvalConfig, planner_factory: Callable[..., Any] | None = None,
             progress_bar: bool = True) -> dict[str, Any]:
    """Run the evaluation of ``cfg``; returns the results dict (also written to ``results.json``).

    With ``cfg.workers > 1`` (or ``cfg.ray``) the episodes run on that many processes (or Ray actors,
    :func:`agentrm_gym.parallel.run_jobs`), each with its own env, policy and planner (``planner_factory``
    must then be a module-level function); ``episodes.jsonl`` is the same as one process writes.
    """
    from agentrm_gym.core import UnknownTask
    from agentrm_gym.parallel import canonical_jsonl, resolve_workers, run_jobs
    from agentrm_gym.registry import get_spec

    try:
        name, env_id = get_spec(cfg.env).name, get_spec(cfg.env).env_id
    except UnknownTask:
        if not cfg.env_url:
            raise
        name = cfg.env.removeprefix("agentrm/").removesuffix("-v0")  # a task only the server knows
        env_id = f"agentrm/{name}-v0"
    load_scorer(cfg)  # a bad --rm / --scorer fails here, before any episode
    out = Path(cfg.out or f"runs/{name}__eval__{cfg.method.replace(':', '-')}__{cfg.seed}__{int(time.time())}")
    out.mkdir(parents=True, exist_ok=True)
    episodes_path = out / "episodes.jsonl"
    if episodes_path.exists() and episodes_path.stat().st_size and not cfg.resume:
        if not cfg.overwrite:
            raise EvalError(f"{episodes_path} already has episodes: pass --resume to continue it or --overwrite")
        episodes_path.unlink()
    done = {r["task_id"] for r in rewrite_jsonl(episodes_path)}

    env = cfg.make_env()
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    try:
        task_ids = env.unwrapped.task_ids(cfg.split)[: cfg.episodes]
        todo = [(i, t) for i, t in enumerate(task_ids) if t not in done]
        write_json_atomic(out / "config.json", asdict(cfg), indent=2, ensure_ascii=True)
        # one episode engine (parallel.run_jobs), as the pipeline's stages: this process for one worker,
        # a process pool or Ray actors for more, each playing on an EvalWorker of its own
        workers = resolve_workers(cfg.workers)
        make_worker = partial(EvalWorker, asdict(cfg), planner_factory)
        here = make_worker() if todo and workers <= 1 and not cfg.ray else None  # a bad policy fails now
        try:
            for (index, _), traj in run_jobs(eval_job, todo, make_worker, workers=workers, ray=cfg.ray,
                                             context=here, desc=f"{name} {cfg.method}",
                                             progress_bar=progress_bar):
                traj.meta = {**traj.meta, "episode": index, "method": cfg.method}
                append_jsonl(episodes_path, [traj])
        finally:
            if here is not None:
                here.close()
    finally:
        env.close()
    canonical_jsonl(episodes_path, lambda r: r["task_id"], task_ids)  # the file one process writes

    records = list(read_jsonl(episodes_path)) if episodes_path.exists() else []
    order = {t: i for i, t in enumerate(task_ids)}
    records = sorted((r for r in records if r["task_id"] in order), key=lambda r: order[r["task_id"]])
    results = {"env": env_id, "policy": cfg.policy, "method": cfg.method, "split": cfg.split,
               "scorer": cfg.rm or cfg.scorer, "skipped": len(done & set(task_ids)), **summarize(records)}
    write_json_atomic(out / "results.json", results, indent=2, ensure_ascii=True)
    writer = summary_writer(out / "tb")
    if writer is not None:
        writer.add_text("hyperparameters", json.dumps(asdict(cfg)))
        for r in records:
            writer.add_scalar("episode/progress", float(r["progress"]), order[r["task_id"]])
        writer.add_scalar("charts/success_rate", results["success_rate"], len(records))
        writer.add_scalar("charts/progress_rate", results["progress_rate"], len(records))
        writer.close()
    results["out"] = str(out)
    return results
