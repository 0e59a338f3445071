"""The task table of the suite, the registration of its Gymnasium ids, and the plug-in point for new tasks.

A task is its module (a :class:`~agentrm_gym.core.TextEnv` subclass) plus one :class:`TaskSpec` that carries
everything the rest of the suite knows about it: its role (held-in / held-out), splits and step cap, the
RM header, the scores its env prints about itself (stripped from RM inputs), its oracle scorer for
planners, whether its backend is slow. Nothing outside a task's own module and its row names the task.

* :data:`TASKS` - the rows: AgentRM's nine tasks (:data:`SUITE`), then any plug-in task;
* :func:`register_task` - add a task from outside the package (registers ``agentrm/<Name>-v0``);
* the entry-point group ``agentrm_gym.tasks`` (:data:`ENTRY_POINT_GROUP`) - an installed package's tasks,
  found and registered when ``agentrm_gym`` is imported (as pytest finds its plug-ins): each entry point
  names a :class:`TaskSpec`, a list of them, or a function returning either;
* :func:`register_envs` - registers ``agentrm/<Task>-v0`` for every row with its ``max_episode_steps``.
  Variants are kwargs: ``gym.make("agentrm/Maze-v0", split="train")``;
* :func:`task_scorer` - a task's own oracle scorer (``scorer``, set for Maze), imported on first use, so
  that planners never import a task's module.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import gymnasium as gym

from agentrm_gym.core import MissingExtra, UnknownTask

NAMESPACE = "agentrm"
ENTRY_POINT_GROUP = "agentrm_gym.tasks"
CATEGORIES = ("web", "embodied", "text game", "tool")


@dataclass(frozen=True)
class TaskSpec:
    """One row of the task table: everything the suite knows about a task.

    Attributes:
        name: the task name (``info["task"]``), also the id stem: ``agentrm/<name>-v0``.
        entry_point: ``"module:Class"`` of the env (a :class:`~agentrm_gym.core.TextEnv` subclass).
        category: web, embodied, text game or tool (AgentRM's grouping).
        held_in: whether AgentRM trains its RM on this task (WebShop, ALFWorld, ScienceWorld).
        test_size: the number of test-split episodes.
        max_steps: the ``max_episode_steps`` of the registered id.
        extra: the pip extra the backend needs (``None`` when the core install suffices).
        requires: importable modules the backend needs (checked by :func:`missing_requirements`).
        oracle_min_success: the oracle success rate the contract checker demands on the test split.
        kwargs: default constructor kwargs.
        scorer: ``"module:Class"`` of the task's own oracle scorer for planners (a no-argument class whose
            instances map agent states to floats), ``""`` when the task has none; see :func:`task_scorer`.
        rm_role: the first sentence of the task's RM header (who the agent is).
        rm_actions: the RM header's summary of the action grammar (after ``Allowed actions:``).
        score_patterns: regular expressions of scores the env prints about the episode itself; RM inputs
            have them removed (an RM must not read the answer off the observation).
        slow: the backend is slow (an external simulator): its tests carry the ``slow`` mark.
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
    rm_role: str = "You are an expert agent."
    rm_actions: str = "those the environment accepts."
    score_patterns: tuple[str, ...] = ()
    slow: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", self.name or ""):
            problems.append(f"name {self.name!r} must be an identifier (it becomes agentrm/<name>-v0)")
        if not re.fullmatch(r"[\w.]+:[\w.]+", self.entry_point or ""):
            problems.append(f"entry_point {self.entry_point!r} must be 'module:Class'")
        if self.scorer and not re.fullmatch(r"[\w.]+:[\w.]+", self.scorer):
            problems.append(f"scorer {self.scorer!r} must be 'module:Class' or empty")
        if self.test_size < 1 or self.max_steps < 1:
            problems.append("test_size and max_steps must be positive")
        for pattern in self.score_patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.append(f"score pattern {pattern!r}: {exc}")
        if problems:
            raise ValueError(f"TaskSpec {self.name!r}: " + "; ".join(problems))

    @property
    def env_id(self) -> str:
        return f"{NAMESPACE}/{self.name}-v0"

    @property
    def role(self) -> str:
        return "held-in" if self.held_in else "held-out"

    @property
    def module(self) -> str:
        return self.entry_point.split(":")[0]


_TOOL_ACTIONS = "<tool> with Action Input: {json}, ending with finish."

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec(
            "WebShop", "agentrm_gym.envs.webshop:WebShopEnv", "web", True, 200, 10, oracle_min_success=1.0,
            rm_role="You are an expert web shopping agent.",
            rm_actions="search[keywords] on the search page, click[button or item] on result and item pages.",
            score_patterns=(r"Your score \(min 0\.0, max 1\.0\)(?:\s*\[SEP\]\s*|\s*)[0-9.]*",),
        ),
        TaskSpec(
            "ALFWorld", "agentrm_gym.envs.alfworld:ALFWorldEnv", "embodied", True, 134, 30,
            extra="alfworld", requires=("alfworld", "textworld"), slow=True,
            rm_role="You are an expert household agent.",
            rm_actions="go to, take, put, open, close, toggle, clean, heat, cool, use, examine, inventory, look.",
        ),
        TaskSpec(
            "ScienceWorld", "agentrm_gym.envs.sciworld:ScienceWorldEnv", "embodied", True, 90, 30,
            extra="sciworld", requires=("scienceworld",), slow=True,
            rm_role="You are an expert science lab agent.",
            rm_actions="open, close, activate, deactivate, move, pick up, pour, focus on, look around, look at, "
                       "read, connect, wait, go to, use, mix, teleport to.",
        ),
        TaskSpec(
            "BabyAI", "agentrm_gym.envs.babyai:BabyAIEnv", "embodied", False, 112, 30,
            rm_role="You are an expert grid-world agent.",
            rm_actions="turn left, turn right, move forward, go to <obj>, pickup <obj>, go through <door>, "
                       "toggle and go through <door>, toggle.",
        ),
        TaskSpec(
            "Jericho", "agentrm_gym.envs.jericho:JerichoEnv", "text game", False, 20, 30,
            extra="jericho", requires=("jericho", "textworld"), slow=True,
            rm_role="You are an expert text adventure player.",
            rm_actions="natural-language commands such as look, inventory, go <direction>, take <item>, "
                       "open <object>.",
        ),
        TaskSpec(
            "PDDL", "agentrm_gym.envs.pddl:PDDLEnv", "text game", False, 60, 30, oracle_min_success=1.0,
            rm_role="You are an expert planning agent.",
            rm_actions="the domain's operators applied to objects, e.g. pickup b1, stack b1 b2.",
        ),
        TaskSpec(
            "Maze", "agentrm_gym.envs.maze:MazeEnv", "text game", False, 25, 50, oracle_min_success=1.0,
            scorer="agentrm_gym.envs.maze:MazeDistanceScorer",
            rm_role="You are an expert maze solver.", rm_actions="move up, move down, move left, move right.",
        ),
        TaskSpec(
            "ToolQuery", "agentrm_gym.envs.tools.query:ToolQueryEnv", "tool", False, 60, 30, oracle_min_success=1.0,
            rm_role="You are an expert tool-using agent answering queries.", rm_actions=_TOOL_ACTIONS,
        ),
        TaskSpec(
            "ToolOperation", "agentrm_gym.envs.tools.operation:ToolOperationEnv", "tool", False, 40, 30,
            oracle_min_success=1.0, rm_role="You are an expert tool-using agent operating apps.",
            rm_actions=_TOOL_ACTIONS, score_patterns=(r"The store (?:does not )?match(?:es)? the goal\.?",),
        ),
    ]
}

#: AgentRM's nine tasks in its table's order: the pipeline's default task lists (plug-in tasks join by
#: ``--set sft_tasks=... eval_tasks=...``).
SUITE: tuple[str, ...] = tuple(TASKS)


def suite_tasks(held_in: bool | None = None) -> tuple[str, ...]:
    """The names of the suite's nine tasks (:data:`SUITE`); ``held_in`` keeps one role only."""
    return tuple(n for n in SUITE if held_in is None or TASKS[n].held_in == held_in)


def register_task(spec: TaskSpec, replace: bool = False) -> str:
    """Add a task to the table and register its Gymnasium id; returns the id.

    The task then works wherever a built-in one does: ``gym.make``, ``agentrm envs``, ``agentrm eval``, the
    pipeline (``--set eval_tasks=...``), the RM text (its header and score patterns) and the contract
    checker (:func:`agentrm_gym.check_task`).

    Raises:
        ValueError: a task of that name (any case) is registered already and ``replace`` is false, or the
            spec is malformed (:class:`TaskSpec` checks its fields).
    """
    if not isinstance(spec, TaskSpec):
        raise TypeError(f"register_task takes a TaskSpec, got {type(spec).__name__}")
    clash = next((n for n in TASKS if n.lower() == spec.name.lower()), None)
    if clash is not None and not replace:
        if TASKS[clash] == spec:
            return spec.env_id  # the same row twice (a module imported again): nothing to do
        raise ValueError(f"a task named {clash!r} is registered already; pass replace=True to replace it")
    if clash is not None:
        del TASKS[clash]
        gym.registry.pop(f"{NAMESPACE}/{clash}-v0", None)
    TASKS[spec.name] = spec
    _score_patterns.cache_clear()
    _register(spec)
    return spec.env_id


def _as_specs(obj: Any, where: str) -> list[TaskSpec]:
    if callable(obj) and not isinstance(obj, TaskSpec):
        obj = obj()
    specs = [obj] if isinstance(obj, TaskSpec) else list(obj) if isinstance(obj, Iterable) else [obj]
    bad = [type(s).__name__ for s in specs if not isinstance(s, TaskSpec)]
    if bad:
        raise TypeError(f"{where} must give TaskSpec rows, got {', '.join(bad)}")
    return specs


def load_task_plugins(entry_points: Iterable[Any] | None = None) -> list[str]:
    """Register the tasks of the installed packages' ``agentrm_gym.tasks`` entry points; returns their ids.

    A plug-in that fails to load (an import error, a malformed row, a name clash) is reported with a
    warning naming the entry point, and the others still load: one broken package does not break
    ``import agentrm_gym``.
    """
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    ids = []
    for ep in entry_points:
        where = f"entry point {ep.name} = {ep.value} (group {ENTRY_POINT_GROUP})"
        try:
            for spec in _as_specs(ep.load(), where):
                ids.append(register_task(spec))
        except Exception as exc:  # noqa: BLE001 - a plug-in's failure is reported, not raised at import
            warnings.warn(f"agentrm_gym: task plug-in {where} not loaded: {exc}", RuntimeWarning, stacklevel=2)
    return ids


@lru_cache(maxsize=1)
def _score_patterns() -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for spec in TASKS.values() for p in spec.score_patterns)


def env_score_patterns() -> tuple[re.Pattern[str], ...]:
    """The compiled ``score_patterns`` of every registered task, in table order (RM inputs drop them)."""
    return _score_patterns()


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
    """Rows whose env module can be found in this install."""
    return [s for s in TASKS.values() if is_implemented(s)]


def _register(spec: TaskSpec) -> None:
    if spec.env_id not in gym.registry:
        gym.register(id=spec.env_id, entry_point=spec.entry_point, max_episode_steps=spec.max_steps,
                     kwargs=dict(spec.kwargs))


def register_envs(plugins: bool = True) -> list[str]:
    """Register ``agentrm/<Task>-v0`` for every task whose module is found, after loading the installed
    task plug-ins (``plugins``); returns the ids."""
    if plugins:
        load_task_plugins()
    ids = []
    for spec in available_specs():
        _register(spec)
        ids.append(spec.env_id)
    return ids


def register_remote_env() -> str:
    """Register ``agentrm/Remote-v0``: any task of an env server (``agentrm serve env``), by ``url`` and ``task``."""
    env_id = f"{NAMESPACE}/Remote-v0"
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point="agentrm_gym.envs.remote:RemoteEnv")
    return env_id


def make_remote(url: str, task: str | None = None, **kwargs: Any) -> gym.Env:
    """A session of the env server at ``url`` (``agentrm serve env``) as ``agentrm/Remote-v0``, with the task's
    ``max_episode_steps`` as the server states it (:func:`agentrm_gym.envs.remote.make_remote`)."""
    remote = importlib.import_module("agentrm_gym.envs.remote")
    return remote.make_remote(url, task, **kwargs)


def make(name_or_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` by task name or id, e.g. ``make("maze", split="test")``."""
    spec = get_spec(name_or_id)
    if not is_implemented(spec):
        raise UnknownTask(f"{spec.env_id}: its module {spec.module} cannot be found in this install")
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
    BFS-distance scorer; the scorer's module is imported only now. A task whose row names no scorer but
    whose env has an oracle hook (``oracle_value`` / ``distance_to_goal``) gets
    :class:`~agentrm_gym.agents.scorers.OracleHookScorer` over that hook.
    """
    from agentrm_gym.core import has_oracle_hooks

    spec = get_spec(task_name)
    cls = load_scorer(spec)
    if cls is not None:
        return cls()
    if is_implemented(spec) and has_oracle_hooks(load_entry_point(spec)):
        scorer = importlib.import_module("agentrm_gym.agents.scorers").OracleHookScorer
        return scorer(spec.name)
    return None
