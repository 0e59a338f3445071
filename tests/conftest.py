"""Shared fixtures: the env registry as pytest parameters, and one smoke pipeline run for the analysis tests."""

from __future__ import annotations

from pathlib import Path

import pytest

import agentrm_gym  # noqa: F401  (registers the ids)
from agentrm_gym.registry import TASKS, TaskSpec, is_implemented, missing_requirements


def spec_params() -> list:
    """Every registered task as a pytest parameter; a slow backend's (``TaskSpec.slow``) carries the mark."""
    params = []
    for spec in TASKS.values():
        marks = [pytest.mark.slow] if spec.slow else []
        params.append(pytest.param(spec, id=spec.name, marks=marks))
    return params


def require_task(spec: TaskSpec) -> None:
    """Skip (with the reason) when a task's module or its optional backend is not installed."""
    if not is_implemented(spec):
        pytest.skip(f"{spec.env_id}: its module {spec.module} cannot be found in this install")
    missing = missing_requirements(spec)
    if missing:
        pytest.skip(f"{spec.env_id} needs {', '.join(missing)}: pip install 'agentrm-gym[{spec.extra}]'")


@pytest.fixture(scope="session")
def analysis_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished ``--preset smoke`` pipeline run, shared by the tests of ``agentrm analyze`` (each analysis
    writes only its own files under ``RUN/analysis/``); made once per session."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from agentrm_gym.train.config import preset
    from agentrm_gym.train.pipeline import run_pipeline

    out = tmp_path_factory.mktemp("analyses") / "run"
    run_pipeline(preset("smoke"), out)
    return out
