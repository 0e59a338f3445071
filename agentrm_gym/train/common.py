"""Pieces every pipeline stage shares: the compact prompt, run-directory files, env opening, threads.

* :class:`CompactPromptBuilder` - the policy prompt of the pipeline's tiny model: a one-line instruction,
  no one-shot example, the episode cut to a token budget (the tiny model has no prior to read a long
  instruction with, and every prompt token costs CPU time);
* :func:`write_json_atomic` / :func:`done_marker` / :func:`is_done` - resumability: a stage writes
  ``<stage>/done.json`` last, and a re-run skips stages that have it;
* :func:`open_env` - ``make(task, split=...)``, or ``None`` plus a note when the task's extra is missing;
* :func:`set_threads` - ``torch.set_num_threads`` once per process.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

from agentrm_gym.agents.prompts import Message, PromptBuilder
from agentrm_gym.trajectory import AgentState, Trajectory

DONE = "done.json"


class CompactPromptBuilder(PromptBuilder):
    """:class:`PromptBuilder` with a one-line instruction and no example (the pipeline's tiny policy).

    The layout is otherwise the ETO one (instruction, ``OK``, ``Task: ...\\nObservation: ...``, then
    alternating turns), so the SFT data stays in the ShareGPT format and a real model can be swapped in.
    """

    def __init__(self, budget: int | None = None, count: Any = len):
        super().__init__(with_example=False, budget=budget, count=count)

    def header(self, state: AgentState | Trajectory) -> list[Message]:
        return [{"role": "user", "content": f"You are an agent in the {state.task} environment."},
                {"role": "assistant", "content": "OK"}]


def short_thought(action: str) -> str:
    """A short templated thought for an expert action (one generated word per idea keeps decoding cheap)."""
    words = action.strip().split()
    verb = words[0].split("[")[0] if words else "act"
    return f"I will {verb}."


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write JSON through a temporary file and a rename (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, ensure_ascii=False, default=str)
    os.replace(tmp, path)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def is_done(stage_dir: str | Path) -> bool:
    """Whether a stage directory holds its completion marker."""
    return (Path(stage_dir) / DONE).is_file()


def done_marker(stage_dir: str | Path, summary: dict[str, Any], started: float) -> dict[str, Any]:
    """Write ``done.json`` (the stage's summary plus its wall time) and return the summary."""
    summary = {**summary, "wall_seconds": round(time.time() - started, 2)}
    write_json_atomic(Path(stage_dir) / DONE, summary)
    return summary


def read_done(stage_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(stage_dir) / DONE).read_text(encoding="utf-8"))


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
    """A TensorBoard ``SummaryWriter`` in ``root/tb/<stage>`` (``None`` without tensorboard)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover - tensorboard ships with the dev install
        return None
    return SummaryWriter(log_dir=str(Path(root) / "tb" / stage))


def state_from_dict(d: dict[str, Any]) -> AgentState:
    """An :class:`AgentState` from the ``state`` dict of a tree node or a pair record."""
    from agentrm_gym.trajectory import Step

    return AgentState(task=d["task"], goal=d["goal"], observation=d.get("observation", ""),
                      steps=tuple(Step.from_dict(s) for s in d.get("steps", [])), task_id=str(d.get("task_id", "")),
                      instruction=d.get("instruction", ""))


def state_to_dict(s: AgentState) -> dict[str, Any]:
    from dataclasses import asdict

    return {"task": s.task, "task_id": s.task_id, "goal": s.goal, "observation": s.observation,
            "instruction": s.instruction, "steps": [asdict(st) for st in s.steps]}


def repair_jsonl(path: str | Path) -> None:
    """Drop a last line cut short by an interrupted writer, so that appending to the file stays valid JSONL."""
    path = Path(path)
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
