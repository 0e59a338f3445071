"""Shared fixtures: the env registry as pytest parameters."""

from __future__ import annotations

import pytest

import agentrm_gym  # noqa: F401  (registers the ids)
from agentrm_gym.registry import TASKS, TaskSpec, is_implemented, missing_requirements

#: Tasks whose every test is slow enough (external simulators) to carry the ``slow`` mark.
SLOW_TASKS = {"ScienceWorld", "ALFWorld", "Jericho"}


def spec_params() -> list:
    params = []
    for spec in TASKS.values():
        marks = [pytest.mark.slow] if spec.name in SLOW_TASKS else []
        params.append(pytest.param(spec, id=spec.name, marks=marks))
    return params


def require_task(spec: TaskSpec) -> None:
    """Skip (with the reason) when a task's module or its optional backend is not installed."""
    if not is_implemented(spec):
        pytest.skip(f"{spec.env_id}: env module {spec.module} not implemented yet")
    missing = missing_requirements(spec)
    if missing:
        pytest.skip(f"{spec.env_id} needs {', '.join(missing)}: pip install 'agentrm-gym[{spec.extra}]'")
