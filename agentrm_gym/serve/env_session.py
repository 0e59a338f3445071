"""One agentrm-gym task as an OpenEnv environment, plus the server's store of snapshots.

The env server (:mod:`agentrm_gym.serve.env_server`) hands each session one :class:`TaskEnvironment`, an
``openenv.core.env_server.Environment`` with typed models:

* :class:`TextAction` - ``{"command": "go to desk 1"}``, the text action of the TextEnv contract;
* :class:`TextObservation` - the observation text plus what ``info`` holds (goal, admissible actions,
  progress, success, action validity, steps), ``terminated`` / ``truncated`` and the session's id;
* :class:`TextState` - the episode (task, task id, steps, progress, success, done).

A session chooses its task at ``reset(task=..., task_id=..., split=..., seed=...)`` (default: the server's
first task) and may instead start from a snapshot token: ``reset(snapshot_id=...)`` restores the state the
token names, which is how a WebSocket client forks (a new connection, reset from a token).

:class:`SnapshotStore` keeps the server's snapshots behind opaque tokens: bounded per session and in all,
the least recently used dropped first (a token dropped so is answered ``410 Gone``), and forgotten with
the session that took them.

Needs the ``serve`` extra (``openenv-core``, which brings pydantic and FastAPI).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from openenv.core.env_server import Action, Environment, Observation, State
from openenv.core.env_server.types import EnvironmentMetadata
from pydantic import Field

from agentrm_gym.core import ResetNeeded, Snapshot, restore, snapshot, unwrap_text_env
from agentrm_gym.registry import get_spec, make

#: Keyword arguments that ``reset`` takes besides OpenEnv's ``seed`` and ``episode_id``.
RESET_KEYS = ("task", "task_id", "split", "snapshot_id")
#: The ``info`` keys of the TextEnv contract (typed fields of :class:`TextObservation`); others go to ``extra_info``.
CONTRACT_INFO = ("task", "task_id", "goal", "progress", "success", "admissible_actions", "action_valid", "steps")


class RequestError(Exception):
    """A request the server cannot act on; answered with ``status`` and ``{"detail": message}``."""

    status = 422

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


class SnapshotGone(RequestError):
    """A snapshot token that the server does not hold (never issued, deleted, or evicted)."""

    status = 410


class TextAction(Action):
    """One text command, sent as it would be to ``env.step``; any string is accepted (invalid ones are
    answered in the observation, as the TextEnv contract says)."""

    command: str = Field(description="the text action, e.g. 'go to desk 1' or 'check valid actions'")


class TextObservation(Observation):
    """What the agent sees after ``reset`` / ``step`` / ``restore``: the text and the ``info`` of the contract."""

    text: str = Field(default="", description="the observation text")
    task: str = Field(default="", description="the task name (info['task'])")
    task_id: str | None = Field(default=None, description="the task id of the episode")
    goal: str = Field(default="", description="the instruction text of the episode")
    admissible_actions: list[str] | None = Field(default=None, description="valid commands, or null where unknown")
    progress: float = Field(default=0.0, description="the progress rate in [0, 1], the max reached so far")
    success: bool = Field(default=False, description="whether the task is solved")
    action_valid: bool = Field(default=True, description="whether the last command was valid")
    steps: int = Field(default=0, description="steps taken in the episode")
    terminated: bool = Field(default=False, description="the episode ended (success or a terminal state)")
    truncated: bool = Field(default=False, description="the step budget (max_episode_steps) ran out")
    instruction: str | None = Field(default=None, description="the task's instructions (after reset/restore only)")
    session_id: str | None = Field(default=None, description="the server session (for the snapshot routes)")
    extra_info: dict[str, Any] = Field(default_factory=dict, description="the task's own info keys (JSON values)")


class TextState(State):
    """The episode a session is in (``GET /state``, the WebSocket ``state`` message)."""

    task: str | None = None
    task_id: str | None = None
    split: str | None = None
    goal: str = ""
    progress: float = 0.0
    success: bool = False
    done: bool = False
    session_id: str | None = None


@dataclass
class EnvServerLimits:
    """The bounds of one env server.

    Attributes:
        tasks: task names the server offers (the first is the default of ``reset``).
        env_kwargs: extra constructor kwargs per task name (e.g. ``{"WebShop": {"num_products": 100}}``).
        max_sessions: live sessions (WebSocket connections and HTTP sessions together).
        max_snapshots: live snapshot tokens in all.
        max_snapshots_per_session: live snapshot tokens per session.
        idle_timeout: seconds without a request after which a session is closed (``None``: never).
    """

    tasks: tuple[str, ...]
    env_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_sessions: int = 64
    max_snapshots: int = 16384
    max_snapshots_per_session: int = 2048
    idle_timeout: float | None = 600.0


@dataclass
class StoredSnapshot:
    """A snapshot as the server keeps it: the env's own state, and where to restore it."""

    task: str
    split: str
    state: Snapshot
    episode_id: str | None = None


class SnapshotStore:
    """Snapshots behind unguessable tokens, bounded per owner (session) and in all; thread-safe.

    Args:
        max_total: live tokens in all; beyond it the least recently used one is dropped.
        max_per_owner: live tokens per owner; beyond it the owner's least recently used one is dropped.
    """

    def __init__(self, max_total: int = 16384, max_per_owner: int = 2048):
        if max_total < 1 or max_per_owner < 1:
            raise ValueError("snapshot limits must be >= 1")
        self.max_total, self.max_per_owner = max_total, max_per_owner
        self._items: OrderedDict[str, tuple[str, StoredSnapshot]] = OrderedDict()
        self._by_owner: dict[str, OrderedDict[str, None]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, owner: str, item: StoredSnapshot) -> str:
        """Keep ``item`` for ``owner``; returns its token."""
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._items[token] = (owner, item)
            mine = self._by_owner.setdefault(owner, OrderedDict())
            mine[token] = None
            while len(mine) > self.max_per_owner:
                self._drop(next(iter(mine)))
            while len(self._items) > self.max_total:
                self._drop(next(iter(self._items)))
        return token

    def get(self, token: Any) -> StoredSnapshot:
        """The snapshot behind ``token``; raises :class:`SnapshotGone` when there is none."""
        if not isinstance(token, str) or not token:
            raise RequestError(f"snapshot_id must be a token string from /snapshot, got {token!r}")
        with self._lock:
            found = self._items.get(token)
            if found is None:
                raise SnapshotGone(f"unknown snapshot {token!r}: never issued, deleted, or evicted (the server "
                                   f"keeps {self.max_per_owner} per session and {self.max_total} in all)")
            self._items.move_to_end(token)
            self._by_owner[found[0]].move_to_end(token)
            return found[1]

    def delete(self, token: str) -> bool:
        """Forget ``token``; whether it was held."""
        with self._lock:
            return self._drop(token)

    def drop_owner(self, owner: str) -> int:
        """Forget every token of ``owner`` (its session closed); how many there were."""
        with self._lock:
            tokens = list(self._by_owner.get(owner, ()))
            for t in tokens:
                self._drop(t)
            self._by_owner.pop(owner, None)
            return len(tokens)

    def _drop(self, token: str) -> bool:
        found = self._items.pop(token, None)
        if found is None:
            return False
        mine = self._by_owner.get(found[0])
        if mine is not None:
            mine.pop(token, None)
            if not mine:
                del self._by_owner[found[0]]
        return True


def _check_reset_kwargs(kwargs: dict[str, Any]) -> None:
    unknown = sorted(set(kwargs) - set(RESET_KEYS))
    if unknown:
        raise RequestError(f"unknown reset parameter(s) {unknown}; reset takes seed, episode_id and "
                           f"{', '.join(RESET_KEYS)}")
    for key in ("task", "split", "snapshot_id"):
        if kwargs.get(key) is not None and not isinstance(kwargs[key], str):
            raise RequestError(f"{key} must be a string, got {type(kwargs[key]).__name__}")
    if kwargs.get("task_id") is not None and not isinstance(kwargs["task_id"], (str, int)):
        raise RequestError(f"task_id must be a string, got {type(kwargs['task_id']).__name__}")


class TaskEnvironment(Environment[TextAction, TextObservation, TextState]):
    """An OpenEnv environment that plays any task of the server in one gym env at a time.

    The gym env (``registry.make(task, split=...)``, with the task's ``max_episode_steps``) is built at the
    first ``reset`` and rebuilt only when a reset asks for another task or split; ``close`` closes it (and
    its simulator: a JVM, a Z-machine).

    Args:
        limits: the server's :class:`EnvServerLimits` (the tasks it offers, their kwargs).
        store: the server's :class:`SnapshotStore`.
    """

    SUPPORTS_CONCURRENT_SESSIONS = True  # each instance owns its own gym env; nothing mutable is shared

    def __init__(self, limits: EnvServerLimits, store: SnapshotStore):
        super().__init__()
        self.limits, self.store = limits, store
        #: The server session this env serves (set by the server; ``None`` for a one-request env).
        self.session_id: str | None = None
        self._env: gym.Env | None = None
        self._key: tuple[str, str] | None = None
        self._episode_id: str | None = None
        self._truncated = False

    # ------------------------------------------------------------------ OpenEnv API
    def reset(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any) -> TextObservation:
        """Start an episode: ``task``, ``task_id``, ``split`` (``"test"`` by default) and ``seed`` as for a
        TextEnv, or ``snapshot_id`` to start from a snapshot token instead."""
        _check_reset_kwargs(kwargs)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise RequestError(f"seed must be a non-negative integer, got {seed!r}")
        if kwargs.get("snapshot_id") is not None:
            return self.restore(kwargs["snapshot_id"], episode_id=episode_id)
        env = self._ensure(kwargs.get("task"), kwargs.get("split"))
        options = {"task_id": str(kwargs["task_id"])} if kwargs.get("task_id") is not None else None
        try:
            text, info = env.reset(seed=seed, options=options)
        except KeyError as exc:  # UnknownTask: a task id outside the splits
            self.close()  # the failed reset may have left the env half-loaded: no episode, as before
            raise RequestError(str(exc), status=404) from exc
        self._episode_id, self._truncated = episode_id, False
        return self._observation(text, None, False, False, info, with_instruction=True)

    def step(self, action: TextAction, timeout_s: float | None = None, **kwargs: Any) -> TextObservation:
        env = self._require_env()
        text, reward, terminated, truncated, info = env.step(action.command)
        self._truncated = bool(truncated)
        return self._observation(text, float(reward), bool(terminated), bool(truncated), info)

    @property
    def state(self) -> TextState:
        if self._env is None or self._key is None:
            return TextState(session_id=self.session_id)
        base = unwrap_text_env(self._env)
        return TextState(
            episode_id=self._episode_id, step_count=base.steps, task=self._key[0], task_id=base.task_id,
            split=self._key[1], goal=base.goal, progress=base.progress, success=base.success,
            done=self._done(base), session_id=self.session_id,
        )

    def get_metadata(self) -> EnvironmentMetadata:
        return EnvironmentMetadata(
            name="agentrm-gym",
            description=("agentrm-gym text environments with snapshot/restore/fork; tasks: "
                         + ", ".join(self.limits.tasks) + ". Reset with task, task_id, split, seed or snapshot_id; "
                         "step with {'command': text}."),
            version="1",
            documentation_url="docs/serving.md",
        )

    def close(self) -> None:
        if self._env is not None:
            env, self._env, self._key = self._env, None, None
            env.close()

    # ------------------------------------------------------------------ what OpenEnv lacks
    def take_snapshot(self) -> StoredSnapshot:
        """The session's state now, as the store keeps it (not yet stored)."""
        env = self._require_env()
        assert self._key is not None
        return StoredSnapshot(self._key[0], self._key[1], snapshot(env), self._episode_id)

    def restore(self, snapshot_id: str, episode_id: str | None = None) -> TextObservation:
        """Return to the state behind ``snapshot_id`` (of any session: this is also how a session forks)."""
        return self.restore_stored(self.store.get(snapshot_id), episode_id)

    def restore_stored(self, item: StoredSnapshot, episode_id: str | None = None) -> TextObservation:
        env = self._ensure(item.task, item.split)
        if unwrap_text_env(env).task_id is None:  # a fresh env: reset through its wrappers (order enforcing)
            env.reset(options={"task_id": item.state.task_id})
        restore(env, item.state)
        base = unwrap_text_env(env)
        limit = getattr(env.spec, "max_episode_steps", None) if env.spec is not None else None
        self._truncated = bool(limit) and base.steps >= limit and not base._terminated
        self._episode_id = episode_id if episode_id is not None else item.episode_id
        info = base._info()  # the info of the restored state, as step() would have returned it
        return self._observation(base.last_observation, None, base._terminated, self._truncated, info,
                                 with_instruction=True)

    def expert_action(self) -> str | None:
        """The task oracle's next command from the current state."""
        return unwrap_text_env(self._require_env()).expert_action()

    # ------------------------------------------------------------------ helpers
    def _ensure(self, task: str | None, split: str | None) -> gym.Env:
        name = self.limits.tasks[0] if task is None else task
        try:
            name = get_spec(name).name
        except KeyError as exc:
            raise RequestError(str(exc), status=404) from exc
        if name not in self.limits.tasks:
            raise RequestError(f"task {task!r} is not served here; this server offers {', '.join(self.limits.tasks)}",
                               status=404)
        split = "test" if split is None else split
        if split not in ("train", "test"):
            raise RequestError(f"split must be 'train' or 'test', got {split!r}")
        if self._env is None or self._key != (name, split):
            self.close()
            self._env = make(name, split=split, **self.limits.env_kwargs.get(name, {}))
            self._key = (name, split)
        return self._env

    def _require_env(self) -> gym.Env:
        if self._env is None or unwrap_text_env(self._env).task_id is None:
            raise ResetNeeded("this session has no episode: reset it first (the stateless POST /step of OpenEnv "
                              "starts from a fresh env; use a WebSocket or /sessions/{id}/step)")
        return self._env

    def _done(self, base: Any) -> bool:
        return bool(base._terminated or self._truncated)

    def _observation(self, text: str, reward: float | None, terminated: bool, truncated: bool,
                     info: dict[str, Any], with_instruction: bool = False) -> TextObservation:
        assert self._env is not None and self._key is not None
        base = unwrap_text_env(self._env)
        admissible = info.get("admissible_actions")
        return TextObservation(
            text=text, task=str(info.get("task", self._key[0])), task_id=info.get("task_id"),
            goal=str(info.get("goal", "")), admissible_actions=None if admissible is None else list(admissible),
            progress=float(info.get("progress", 0.0)), success=bool(info.get("success", False)),
            action_valid=bool(info.get("action_valid", True)), steps=int(info.get("steps", base.steps)),
            terminated=terminated, truncated=truncated, done=terminated or truncated, reward=reward,
            instruction=base.instruction() if with_instruction else None, session_id=self.session_id,
            extra_info={k: v for k, v in info.items() if k not in CONTRACT_INFO and _is_json(v)},
        )


def _is_json(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool)) or (
        isinstance(value, (list, tuple)) and all(_is_json(v) for v in value)) or (
        isinstance(value, dict) and all(isinstance(k, str) and _is_json(v) for k, v in value.items()))
