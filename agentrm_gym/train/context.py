"""What a stage's worker owns, and the loop that plays a stage's episodes on ``workers`` processes or Ray.

* :class:`StageContext` - a worker's envs (the last one opened per split stays open), the run's policy
  and explicit reward model, each built on first use; picklable as its recipe (config + run directory),
  so a worker process or Ray actor builds its own;
* :func:`play` - the episodes (jobs) of a stage's tasks through :func:`agentrm_gym.parallel.run_jobs`,
  in this process (``workers=1``, task by task, the listing env reused) or on a pool / Ray
  (``cfg.workers``, ``cfg.ray``), yielding ``(job, result)`` as they finish; :func:`play_jobs` the same
  for a list of jobs;
* :func:`policy_dir` - the run's policy: ``cfg.policy`` or ``<run>/sft/policy``.

Every job's result depends on the job alone: envs are reset with the episode's seed and planners reseed
the policy per episode (:func:`~agentrm_gym.train.explore.episode_seed`), so which worker plays which
job, and in what order, changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from agentrm_gym.parallel import canonical_jsonl, resolve_workers, run_jobs
from agentrm_gym.train.common import open_env, set_threads
from agentrm_gym.train.config import PipelineConfig

__all__ = ["StageContext", "canonical_jsonl", "play", "play_jobs", "policy_dir"]


def policy_dir(root: str | Path, cfg: PipelineConfig) -> str:
    """The policy of the run: ``cfg.policy`` or the SFT stage's output."""
    return cfg.policy or str(Path(root) / "sft" / "policy")


class StageContext:
    """A worker's envs, policy and RM for the stages of run ``root`` (built lazily, closed by :meth:`close`).

    Args:
        cfg: the run's config (a dict: what crosses to a worker process).
        root: the run directory (on a disk every worker sees; only the calling process writes to it).
        threads: torch threads of this worker (``0``: leave as set).
    """

    def __init__(self, cfg: dict[str, Any], root: str | Path, threads: int = 0):
        self.cfg = PipelineConfig.from_dict(cfg)
        self.root = Path(root)
        if threads:
            set_threads(threads)
        self._envs: dict[str, tuple[str, Any]] = {}
        self._policy: Any = None
        self._rm: Any = None

    def try_env(self, task: str, split: str) -> tuple[Any, str]:
        """``(env, "")`` for ``task`` on ``split`` (the one open for ``split`` is closed when another task
        comes), or ``(None, why)`` when the task cannot be made in this install (missing extra)."""
        held = self._envs.pop(split, None)
        if held is not None and held[0] == task:
            self._envs[split] = held
            return held[1], ""
        if held is not None:
            held[1].close()
        env, why = open_env(task, split)
        if env is not None:
            self._envs[split] = (task, env)
        return env, why

    def env(self, task: str, split: str) -> Any:
        """The env of ``task`` on ``split`` (see :meth:`try_env`).

        Raises:
            RuntimeError: the task cannot be made in this install (the message says why).
        """
        env, why = self.try_env(task, split)
        if env is None:
            raise RuntimeError(why)
        return env

    @property
    def policy(self) -> Any:
        """The run's policy (:func:`~agentrm_gym.train.sft_stage.make_pipeline_policy`), loaded once."""
        if self._policy is None:
            from agentrm_gym.train.sft_stage import make_pipeline_policy

            self._policy = make_pipeline_policy(policy_dir(self.root, self.cfg), self.cfg, seed=self.cfg.seed)
        return self._policy

    @property
    def rm(self) -> Any:
        """The explicit reward model of ``<run>/rm``, loaded once."""
        if self._rm is None:
            from agentrm_gym.rm import load_reward_model

            self._rm = load_reward_model(self.root / "rm")
        return self._rm

    def worker_factory(self, threads: int) -> Callable[[], StageContext]:
        """What builds this context's copy in a worker (its class on the same config and run, with
        ``threads`` torch threads); a subclass with more state passes it on."""
        return partial(type(self), self.cfg.to_dict(), str(self.root), threads)

    def close_envs(self) -> None:
        """Close every open env (the policy and RM stay loaded)."""
        for _, env in self._envs.values():
            env.close()
        self._envs.clear()

    def close(self) -> None:
        self.close_envs()
        if self._policy is not None and hasattr(self._policy, "close"):
            self._policy.close()
        self._policy = None


def _total_threads(cfg: PipelineConfig) -> int:
    return cfg.threads if cfg.threads > 0 else max(1, min(2, os.cpu_count() or 1))


def play(ctx: StageContext, fn: Callable[[StageContext, Any], Any], tasks: Sequence[str],
         jobs_of: Callable[[str], list[Any]], desc: str) -> Iterator[tuple[Any, Any]]:
    """``(job, fn(context, job))`` for the jobs of every task, as they finish (see the module docstring).

    ``jobs_of(task)`` lists a task's jobs still to do, using ``ctx`` (e.g. ``ctx.try_env`` for the ids).
    With one worker each task is played right after its listing, in this process, on the env the listing
    opened; with more, every task is listed first and one pool (or Ray) plays them all.
    """
    cfg = ctx.cfg
    if resolve_workers(cfg.workers) <= 1 and not cfg.ray:
        for task in tasks:
            yield from run_jobs(fn, jobs_of(task), lambda: ctx, context=ctx, desc=f"{desc} {task}")
        return
    yield from play_jobs(ctx, fn, [job for task in tasks for job in jobs_of(task)], desc)


def play_jobs(ctx: StageContext, fn: Callable[[StageContext, Any], Any], jobs: Sequence[Any],
              desc: str) -> Iterator[tuple[Any, Any]]:
    """``(job, fn(context, job))`` for ``jobs`` as they finish: in this process on ``ctx`` with one worker,
    else on the run's ``workers`` processes (or Ray), each with the context ``ctx.worker_factory`` makes."""
    cfg = ctx.cfg
    workers = resolve_workers(cfg.workers)
    if workers <= 1 and not cfg.ray:
        yield from run_jobs(fn, list(jobs), lambda: ctx, context=ctx, desc=desc)
        return
    ctx.close_envs()  # the workers open their own
    make = ctx.worker_factory(max(1, _total_threads(cfg) // workers))
    yield from run_jobs(fn, list(jobs), make, workers=workers, ray=cfg.ray, desc=desc)
