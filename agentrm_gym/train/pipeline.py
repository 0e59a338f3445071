"""The AgentRM pipeline end to end: expert -> sft -> explore -> extract -> train-rm -> evaluate.

Quick start::

    from agentrm_gym.train.pipeline import preset, run_pipeline
    results = run_pipeline(preset("smoke"), out="runs/smoke")
    print(results["table_md"])

Each stage is a function ``run_<stage>(cfg, root) -> summary`` in its own module
(:mod:`~agentrm_gym.train.expert`, :mod:`~agentrm_gym.train.sft_stage`, :mod:`~agentrm_gym.train.explore`,
:mod:`~agentrm_gym.train.extract`, :mod:`~agentrm_gym.train.rm_stage`, :mod:`~agentrm_gym.train.evaluate`)
that reads the previous stages' files under ``root`` and writes its own ``root/<stage>/`` directory,
finishing with ``done.json``. A re-run skips finished stages and, inside a stage, finished work (append-only
JSONL). The run directory holds ``config.json`` (the hyperparameters), ``tb/<stage>`` (TensorBoard) and
``pipeline.json`` (every stage's summary). See docs/pipeline.md.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from agentrm_gym.files import write_json_atomic
from agentrm_gym.train.common import is_done
from agentrm_gym.train.config import PRESETS, PipelineConfig, field_help, load_config, preset
from agentrm_gym.train.evaluate import run_evaluate
from agentrm_gym.train.expert import run_expert
from agentrm_gym.train.explore import run_explore
from agentrm_gym.train.extract import run_extract
from agentrm_gym.train.rm_stage import run_train_rm
from agentrm_gym.train.sft_stage import run_sft

__all__ = ["PRESETS", "STAGES", "PipelineConfig", "field_help", "load_config", "new_run_dir", "preset",
           "run_pipeline", "run_stage"]

#: The stages in order: (name, directory under the run, function).
STAGES: list[tuple[str, str, Callable[[PipelineConfig, Path], dict[str, Any]]]] = [
    ("expert", "expert", run_expert),
    ("sft", "sft", run_sft),
    ("explore", "explore", run_explore),
    ("extract", "extract", run_extract),
    ("train-rm", "rm", run_train_rm),
    ("evaluate", "eval", run_evaluate),
]
STAGE_NAMES = [s[0] for s in STAGES]


def new_run_dir(cfg: PipelineConfig, stage: str = "pipeline", base: str | Path = "runs") -> Path:
    """``runs/{name}__{stage}__{seed}__{time}`` (CleanRL naming)."""
    return Path(base) / f"{cfg.name}__{stage}__{cfg.seed}__{int(time.time())}"


def prepare_run(cfg: PipelineConfig, out: str | Path) -> PipelineConfig:
    """Create the run directory and write ``config.json``; a run that exists keeps its own config.

    Resuming with a different config would mix data of two settings, so the saved config wins; only
    the evaluation fields may change between runs (they do not touch the trained artefacts). Any other
    field given differently (``--set rm_candidates=...`` on an existing run) is named in a
    :class:`UserWarning`, not silently dropped.
    """
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "config.json"
    if path.exists():
        saved = load_config(str(path))
        eval_fields = {"eval_tasks", "eval_episodes", "eval_methods", "eval_max_steps", "rm_eval_episodes", "threads",
                       "workers", "ray"}
        ignored = [f.name for f in fields(PipelineConfig)
                   if f.name not in eval_fields and getattr(cfg, f.name) != getattr(saved, f.name)]
        if ignored:
            warnings.warn(
                f"{path} keeps the run's saved config; these fields differ from it and are ignored: "
                + ", ".join(f"{k} (saved {getattr(saved, k)!r}, given {getattr(cfg, k)!r})" for k in ignored)
                + ". Use a new run directory (or edit config.json and delete the stages to redo) to change them",
                UserWarning, stacklevel=2)
        merged = saved.replace(**{k: getattr(cfg, k) for k in eval_fields})
        if merged != saved:
            write_json_atomic(path, merged.to_dict())
        return merged
    write_json_atomic(path, cfg.to_dict())
    return cfg


def run_stage(cfg: PipelineConfig, out: str | Path, stage: str) -> dict[str, Any]:
    """Run one stage by name (``expert``, ``sft``, ``explore``, ``extract``, ``train-rm``, ``evaluate``)."""
    for name, _, fn in STAGES:
        if name == stage:
            cfg = prepare_run(cfg, out)
            return fn(cfg, Path(out))
    raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGE_NAMES)}")


def run_pipeline(config: PipelineConfig, out: str | Path | None = None,
                 stages: Sequence[str] | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the stages in order (all by default), skipping finished ones; returns every summary.

    Args:
        config: the hyperparameters (see :func:`preset`).
        out: the run directory (default: a new ``runs/{name}__pipeline__{seed}__{time}``); pass an existing
            one to resume it.
        stages: a subset of :data:`STAGE_NAMES` (their order is always the pipeline's).
        log: called with one line per stage (e.g. ``print``).

    Returns:
        ``{"run_dir", "config", "stages": {name: summary}, "results": eval results, "table_md": str}``.
    """
    root = Path(out) if out is not None else new_run_dir(config)
    cfg = prepare_run(config, root)
    wanted = list(stages) if stages else STAGE_NAMES
    unknown = [s for s in wanted if s not in STAGE_NAMES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; stages: {', '.join(STAGE_NAMES)}")
    summaries: dict[str, Any] = {}
    for name, sub, fn in STAGES:
        if name not in wanted:
            continue
        skipped = is_done(root / sub)
        t0 = time.time()
        summaries[name] = fn(cfg, root)
        if log:
            log(f"[{name}] {'already done, skipped' if skipped else f'done in {time.time() - t0:.1f}s'}")
    record = {"run_dir": str(root), "config": cfg.to_dict(), "stages": summaries}
    write_json_atomic(root / "pipeline.json", record)
    results_path = root / "eval" / "results.json"
    if results_path.exists():
        record["results"] = json.loads(results_path.read_text(encoding="utf-8"))
        record["table_md"] = (root / "eval" / "table.md").read_text(encoding="utf-8")
    return record
