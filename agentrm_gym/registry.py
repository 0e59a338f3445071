"""The task table of the suite and the registration of its Gymnasium ids.

Each row of :data:`TASKS` is one of AgentRM's nine tasks. ``register_envs()`` runs when
``agentrm_gym`` is imported and registers ``agentrm/<Task>-v0`` for every row, with the task's
``max_episode_steps``. Variants are kwargs: ``gym.make("agentrm/Maze-v0", split="train")``. A row
may also name the task's own oracle scorer for planners (``scorer``, set for Maze); :func:`task_scorer`
imports and makes it, so that planners never import a task's module.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from agentrm_gym.core import MissingExtra, UnknownTask

NAMESPACE = "agentrm"


@dataclass(frozen=True)
class TaskSpec:
    """One row of the task table.

    Attributes:
        name: the task name (``info["task"]``), also the id stem: ``agentrm/<name>-v0``.
        entry_point: ``"module:Class"`` of the env.
        category: web, embodied, text game or tool (AgentRM's grouping).
        held_in: whether AgentRM trains its RM on this task (WebShop, ALFWorld, ScienceWorld).
        test_size: the number of test-split episodes.
        max_steps: the ``max_episode_steps`` of the registered id.
        extra: the pip extra the backend needs (``None`` when the core install suffices).
        requires: importable modules the backend needs (checked by :func:`missing_requirements`).
        oracle_min_success: the oracle success rate the test suite demands on the test split.
        kwargs: default constructor kwargs.
        scorer: ``"module:Class"`` of the task's own oracle scorer for planners (a no-argument class whose
            instances map agent states to floats), ``""`` when the task has none; see :func:`task_scorer`.
    """

    name: str
    entry_point: str
    category: str
    held_in: bool
    test_size: int
    max_steps: int
    extra: str | None = None
    requires: tuple[str, ...] = ()
    oracle_min_success: float = 0.95
    kwargs: dict[str, Any] = field(default_factory=dict)
    scorer: str = ""

    @property
    def env_id(self) -> str:
        return f"{NAMESPACE}/{self.name}-v0"

    @property
    def role(self) -> str:
        return "held-in" if self.held_in else "held-out"

    @property
    def module(self) -> str:
        return self.entry_point.split(":")[0]


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec("WebShop", "agentrm_gym.envs.webshop:WebShopEnv", "web", True, 200, 10, oracle_min_success=1.0),
        TaskSpec(
            "ALFWorld", "agentrm_gym.envs.alfworld:ALFWorldEnv", "embodied", True, 134, 30,
            extra="alfworld", requires=("alfworld", "textworld"),
        ),
        TaskSpec(
            "ScienceWorld", "agentrm_gym.envs.sciworld:ScienceWorldEnv", "embodied", True, 90, 30,
            extra="sciworld", requires=("scienceworld",),
        ),
        TaskSpec("BabyAI", "agentrm_gym.envs.babyai:BabyAIEnv", "embodied", False, 112, 30),
        TaskSpec(
            "Jericho", "agentrm_gym.envs.jericho:JerichoEnv", "text game", False, 20, 30,
            extra="jericho", requires=("jericho", "textworld"),
        ),
        TaskSpec("PDDL", "agentrm_gym.envs.pddl:PDDLEnv", "text game", False, 60, 30, oracle_min_success=1.0),
        TaskSpec(
            "Maze", "agentrm_gym.envs.maze:MazeEnv", "text game", False, 25, 50, oracle_min_success=1.0,
            scorer="agentrm_gym.envs.maze:MazeDistanceScorer",
        ),
        TaskSpec("ToolQuery", "agentrm_gym.envs.tools.query:ToolQueryEnv", "tool", False, 60, 30, oracle_min_success=1.0),
        TaskSpec(
            "ToolOperation", "agentrm_gym.envs.tools.operation:ToolOperationEnv", "tool", False, 40, 30,
            oracle_min_success=1.0,
        ),
    ]
}


def is_implemented(spec: TaskSpec) -> bool:
    """Whether the env module of ``spec`` exists in this install."""
    try:
        return importlib.util.find_spec(spec.module) is not None
    except ModuleNotFoundError:
        return False


def missing_requirements(spec: TaskSpec) -> list[str]:
    """The modules of ``spec.requires`` that cannot be imported here."""
    return [m for m in spec.requires if importlib.util.find_spec(m) is None]


def require_extra(spec_name: str) -> None:
    """Raise :class:`MissingExtra` naming the install command when a task's backend is missing."""
    spec = get_spec(spec_name)
    missing = missing_requirements(spec)
    if missing:
        raise MissingExtra(
            f"{spec.name} needs {', '.join(missing)}: pip install 'agentrm-gym[{spec.extra}]'"
        )


def get_spec(name_or_id: str) -> TaskSpec:
    """Look a task up by name (``"Maze"``), id (``"agentrm/Maze-v0"``) or case-insensitive name."""
    key = name_or_id.removeprefix(f"{NAMESPACE}/").removesuffix("-v0")
    if key in TASKS:
        return TASKS[key]
    for name, spec in TASKS.items():
        if name.lower() == key.lower():
            return spec
    raise UnknownTask(f"{name_or_id!r}; known ids: {', '.join(s.env_id for s in TASKS.values())}")


def available_specs() -> list[TaskSpec]:
    """Rows whose env module exists in this install (all nine once the suite is complete)."""
    return [s for s in TASKS.values() if is_implemented(s)]


def register_envs() -> list[str]:
    """Register ``agentrm/<Task>-v0`` for every implemented task; returns the ids."""
    ids = []
    for spec in available_specs():
        if spec.env_id not in gym.registry:
            gym.register(
                id=spec.env_id,
                entry_point=spec.entry_point,
                max_episode_steps=spec.max_steps,
                kwargs=dict(spec.kwargs),
            )
        ids.append(spec.env_id)
    return ids


def make(name_or_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` by task name or id, e.g. ``make("maze", split="test")``."""
    spec = get_spec(name_or_id)
    if not is_implemented(spec):
        raise UnknownTask(f"{spec.env_id} is not available in this install")
    return gym.make(spec.env_id, **kwargs)


def load_entry_point(spec: TaskSpec) -> type:
    module, cls = spec.entry_point.split(":")
    return getattr(importlib.import_module(module), cls)


def load_scorer(spec: TaskSpec) -> type | None:
    """The class of ``spec.scorer`` (imported on first use), or ``None`` when the task has no scorer."""
    if not spec.scorer:
        return None
    module, cls = spec.scorer.split(":")
    return getattr(importlib.import_module(module), cls)


def task_scorer(task_name: str) -> Any | None:
    """A new instance of a task's own oracle scorer for planners, or ``None`` when it has none.

    ``task_name`` is a name or id as :func:`get_spec` takes it, e.g. ``task_scorer("Maze")`` is Maze's
    BFS-distance scorer; the scorer's module is imported only now.
    """
    cls = load_scorer(get_spec(task_name))
    return None if cls is None else cls()
