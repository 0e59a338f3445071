"""Pieces every pipeline stage shares: the stage preamble, env opening, threads.

* :func:`begin_stage` / :class:`Stage` - the preamble of every stage: ``<run>/<stage>/done.json`` present
  means finished (its summary is returned as is), else the clock starts, torch threads are set and the
  directory is made; :meth:`Stage.finish` writes ``done.json`` last, so a re-run skips finished stages;
* the pipeline's policy prompt is :class:`agentrm_gym.agents.prompts.CompactPromptBuilder`;
* :func:`done_marker` / :func:`is_done` / :func:`read_done` - the ``done.json`` files themselves (a damaged
  one raises :class:`~agentrm_gym.train.config.CorruptRunFile` naming it);
* :func:`open_env` - ``make(task, split=...)``, or ``None`` plus a note when the task's extra is missing;
* :func:`set_threads` - ``torch.set_num_threads`` once per process.

Atomic writes and JSONL repair come from :mod:`agentrm_gym.files`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

from agentrm_gym.files import remove_debris, write_json_atomic
from agentrm_gym.train.config import CorruptRunFile, read_json_object

DONE = "done.json"
__all__ = ["DONE", "CorruptRunFile", "Stage", "begin_stage", "done_marker", "is_done",
           "open_env", "read_done", "set_threads", "short_thought", "tb_writer"]


def short_thought(action: str) -> str:
    """A short templated thought for an expert action (one generated word per idea keeps decoding cheap)."""
    words = action.strip().split()
    verb = words[0].split("[")[0] if words else "act"
    return f"I will {verb}."


@dataclass
class Stage:
    """One stage of a run, opened by :func:`begin_stage`.

    Attributes:
        out: the stage's directory, ``<run>/<stage>``.
        started: when the stage started (its wall time goes into ``done.json``).
        summary: the ``done.json`` of a stage finished earlier, else ``None``.
    """

    out: Path
    started: float
    summary: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        """Whether the stage had finished before (then return :attr:`summary` and do nothing)."""
        return self.summary is not None

    def finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Write ``done.json`` (``summary`` plus the wall time) and return it."""
        return done_marker(self.out, summary, self.started)


def begin_stage(root: str | Path, name: str, threads: int | None = None, mkdir: bool = True) -> Stage:
    """The preamble of a stage: a finished one (``done.json``) comes back with its summary; otherwise the
    clock starts, ``threads`` (if given) sets torch's thread count and the directory is created (``mkdir``)."""
    out = Path(root) / name
    if is_done(out):
        return Stage(out, time.time(), read_done(out))
    started = time.time()
    if threads is not None:
        set_threads(threads)
    if mkdir:
        out.mkdir(parents=True, exist_ok=True)
    remove_debris(out)  # hidden temporaries of writes a kill interrupted (one process writes a stage)
    return Stage(out, started)


def is_done(stage_dir: str | Path) -> bool:
    """Whether a stage directory holds its completion marker."""
    return (Path(stage_dir) / DONE).is_file()


def done_marker(stage_dir: str | Path, summary: dict[str, Any], started: float) -> dict[str, Any]:
    """Write ``done.json`` (the stage's summary plus its wall time) and return the summary."""
    summary = {**summary, "wall_seconds": round(time.time() - started, 2)}
    write_json_atomic(Path(stage_dir) / DONE, summary)
    return summary


def read_done(stage_dir: str | Path) -> dict[str, Any]:
    """The summary in ``<stage>/done.json``.

    Raises:
        CorruptRunFile: the file is damaged (not a JSON object); the message names it and says to delete
            the stage directory to redo the stage.
    """
    stage_dir = Path(stage_dir)
    return read_json_object(stage_dir / DONE, f"delete the stage directory {stage_dir} to redo the stage")


def open_env(task: str, split: str) -> tuple[gym.Env | None, str]:
    """``(env, "")``, or ``(None, why)`` when the task cannot be made in this install (missing extra)."""
    from agentrm_gym.core import AgentRMGymError
    from agentrm_gym.registry import make

    try:
        return make(task, split=split), ""
    except (AgentRMGymError, ImportError, OSError) as exc:
        return None, f"{task} skipped: {exc}"


def set_threads(threads: int) -> None:
    """``torch.set_num_threads`` (``0``: all cores, at most 2, the size of the reference machine)."""
    import torch

    n = threads if threads > 0 else max(1, min(2, os.cpu_count() or 1))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def tb_writer(root: str | Path, stage: str) -> Any:
    """:func:`agentrm_gym.tblog.summary_writer` in ``root/tb/<stage>`` (``None`` without tensorboard)."""
    from agentrm_gym.tblog import summary_writer

    return summary_writer(Path(root) / "tb" / stage)
