"""The TextEnv contract that every agentrm-gym task implements.

A task subclasses :class:`TextEnv` and writes its world through a few hooks:

* :meth:`TextEnv.task_ids` - the fixed train/test splits;
* :meth:`TextEnv._load_task` - build the world for one task id, return the first observation;
* :meth:`TextEnv._step` - apply one (already stripped) command, return a :class:`StepOutcome`;
* :meth:`TextEnv._progress` - the raw progress rate of the current state, in [0, 1];
* :meth:`TextEnv._success` - whether the task is solved;
* :meth:`TextEnv.admissible_actions` - the valid commands (or ``None`` where unknown);
* :meth:`TextEnv.expert_action` - the oracle's next command;
* optionally :meth:`TextEnv._get_state` / :meth:`TextEnv._set_state` for fast native snapshots;
* optionally the oracle hooks :meth:`TextEnv.oracle_value` (a value of the current state in [0, 1]) or
  :meth:`TextEnv.distance_to_goal` (steps left), which RM evaluation turns into labelled comparisons;
* optionally :meth:`TextEnv.perturbation_table` - the task's renamed grammar and goal paraphrases, which
  the ``perturbation`` kwarg (0..4) applies as a translation layer around these hooks
  (:mod:`agentrm_gym.perturbation`).

The base class carries what all tasks share: the info keys, the monotone progress rate with
reward = its increase, the ``check valid actions`` meta-action, non-raising handling of any input, seeding,
and ``snapshot()``/``restore()`` (native when a task provides it, replay of the action prefix otherwise).

Copying an env. ``pickle.dumps(env)``, ``copy.deepcopy(env)`` and ``copy.copy(env)`` work on every task,
although most hold live backends (SQLite connections, a Z-machine behind ctypes, a JVM gateway): a copy is a
*new* env built with the same constructor arguments and restored to :func:`snapshot` of the original (see
:meth:`TextEnv.__reduce_ex__`). It costs one construction (a JVM start for ScienceWorld); to branch a
search within one env, use :func:`snapshot` / :func:`restore`, which are cheap.
"""

from __future__ import annotations

import copy
import pickle
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from agentrm_gym.spaces import CommandSpace, TextSpace

CHECK_VALID_ACTIONS = "check valid actions"
INVALID_ACTION = "The action is not valid and therefore takes no effect. Please check valid actions."
#: Image render modes that a text env accepts (with a warning) as "no rendering"; see :class:`TextEnv`.
IMAGE_RENDER_MODES = ("rgb_array",)


class AgentRMGymError(Exception):
    """Base class of the errors this package raises."""


class UnknownTask(AgentRMGymError, KeyError):
    """A task id (or env id) that the env does not know."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown task"


class MissingExtra(AgentRMGymError, ImportError):
    """An optional dependency is not installed; the message names the install command."""


class ResetNeeded(AgentRMGymError, RuntimeError):
    """``step`` (or ``snapshot``) was called before ``reset``."""


@dataclass
class StepOutcome:
    """What a task's ``_step`` hook returns.

    Attributes:
        observation: the text the agent sees.
        valid: whether the command was understood and applicable (``info["action_valid"]``).
        terminal: the episode ended for a reason other than success (e.g. WebShop's Buy, a death).
    """

    observation: str
    valid: bool = True
    terminal: bool = False


@dataclass
class Snapshot:
    """An opaque, picklable env state returned by :meth:`TextEnv.snapshot`."""

    task_id: str
    reset_rng: dict[str, Any]
    rng: dict[str, Any]
    actions: tuple[str, ...]
    steps: int
    progress: float
    success: bool
    terminated: bool
    observation: str
    action_valid: bool
    native: Any = None


def normalize_action(action: Any) -> str:
    """Turn anything an agent might send into a command string (never raises)."""
    if isinstance(action, bytes):
        action = action.decode("utf-8", errors="replace")
    elif isinstance(action, np.ndarray) and action.shape == ():
        action = action.item()
    if not isinstance(action, str):
        try:
            action = str(action)
        except Exception:
            return ""
    return action.strip()


def _rebuild_env(
    cls: type[TextEnv], args: tuple[Any, ...], kwargs: dict[str, Any], state: Snapshot | None, spec: Any
) -> TextEnv:
    """Unpickle / deep-copy target of :meth:`TextEnv.__reduce_ex__`: a new env restored to ``state``."""
    env = cls(*args, **kwargs)
    env.spec = spec
    if state is not None:
        env.restore(state)
    return env


def oracle_value_of(env: TextEnv, start_distance: float | None = None) -> float | None:
    """The oracle value of ``env``'s current state from its oracle hooks, or ``None`` where it has none:
    :meth:`TextEnv.oracle_value`, else ``1 - d / d0`` from :meth:`TextEnv.distance_to_goal` with ``d0``
    the distance at reset (``start_distance``)."""
    v = env.oracle_value()
    if v is not None:
        return float(v)
    dist = env.distance_to_goal()
    if dist is not None and start_distance:
        return 1.0 - float(dist) / float(start_distance)
    return None


def has_oracle_hooks(cls: type) -> bool:
    """Whether a :class:`TextEnv` subclass overrides an oracle hook (``oracle_value`` / ``distance_to_goal``)."""
    return cls.oracle_value is not TextEnv.oracle_value or cls.distance_to_goal is not TextEnv.distance_to_goal


def unwrap_text_env(env: gym.Env) -> TextEnv:
    """The :class:`TextEnv` under any stack of wrappers."""
    base = env.unwrapped
    if not isinstance(base, TextEnv):
        raise TypeError(f"{type(base).__name__} is not an agentrm_gym TextEnv")
    return base


def snapshot(env: gym.Env) -> Snapshot:
    """Snapshot a (possibly wrapped) text env; use with :func:`restore`."""
    return unwrap_text_env(env).snapshot()


def restore(env: gym.Env, state: Snapshot) -> None:
    """Restore a (possibly wrapped) text env, keeping ``TimeLimit``'s step counter in sync."""
    unwrap_text_env(env).restore(state)
    inner: Any = env
    while isinstance(inner, gym.Wrapper):
        if isinstance(inner, gym.wrappers.TimeLimit):
            inner._elapsed_steps = state.steps
        inner = inner.env


class TextEnv(gym.Env[str, str]):
    """Base class of the agentrm-gym text environments (see the module docstring for the hooks).

    Args:
        split: the task split that ``reset`` draws from when no ``task_id`` is given.
        render_mode: ``"ansi"`` (``render()`` returns the last observation) or ``"human"`` (prints it).
            ``"rgb_array"`` (stable-baselines3's ``make_vec_env`` default) is accepted with a warning and
            means no rendering: ``render_mode`` becomes ``None`` and ``render()`` still returns the text.
        perturbation: 0 (the task as is) to 4: renamed action grammar (1), reworded goals (2), both (3),
            both plus another one-shot example (4); see :mod:`agentrm_gym.perturbation`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"], "render_fps": 1}
    #: The task's name as it appears in ``info["task"]`` and in the registry ("Maze", "BabyAI", ...).
    task_name: ClassVar[str] = "TextEnv"
    #: The in-env message for an invalid command, in the task's own style.
    invalid_action_message: ClassVar[str] = INVALID_ACTION
    #: Commands sampled by ``action_space.sample()`` when the admissible list is unknown.
    command_vocabulary: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        from agentrm_gym.perturbation import install_hooks

        install_hooks(cls)  # the perturbation layer (a call straight through at level 0)

    def __new__(cls, *args: Any, **kwargs: Any) -> TextEnv:
        # Remember the constructor arguments, so that pickle/deepcopy can build an equal env (__reduce_ex__).
        env = super().__new__(cls)
        env._init_args = (args, dict(kwargs))
        return env

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        """Pickle / copy an env as "build a new one with the same arguments, then restore its snapshot".

        Tasks hold backends that cannot be pickled or copied (SQLite connections, Jericho's ctypes
        interpreter, ScienceWorld's JVM gateway), so the copy never touches them: it is rebuilt from the
        constructor arguments and :meth:`snapshot` (itself picklable). Attributes set on the env from
        outside are not carried over.
        """
        args, kwargs = getattr(self, "_init_args", ((), {}))
        state = self.snapshot() if self._task_id is not None and self._reset_rng is not None else None
        try:
            pickle.dumps((args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(
                f"{type(self).__name__} cannot be pickled or copied: its constructor arguments cannot be pickled "
                f"({exc}); copy its state with agentrm_gym.snapshot(env) / agentrm_gym.restore(env, state) instead"
            ) from exc
        return (_rebuild_env, (type(self), args, kwargs, state, self.spec))

    def __init__(self, split: str = "train", render_mode: str | None = None, perturbation: int = 0):
        from agentrm_gym.perturbation import PerturbationState, check_level

        self.perturbation = check_level(perturbation)
        if self.perturbation and type(self).perturbation_table is TextEnv.perturbation_table:
            raise ValueError(f"{self.task_name} has no perturbation table (perturbation_table()); "
                             "only perturbation=0 is available")
        self._perturbation_state = PerturbationState(self.perturbation) if self.perturbation else None
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if render_mode in IMAGE_RENDER_MODES:
            # stable-baselines3's make_vec_env (and other image-first tooling) asks for "rgb_array" by default;
            # a text env has no image, so rendering is turned off instead of failing the construction.
            gym.logger.warn(
                f"{type(self).__name__} is a text env and cannot render {render_mode!r}; rendering is off "
                "(render_mode=None) and render() returns the text as with 'ansi'"
            )
            render_mode = None
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.split = split
        self.render_mode = render_mode
        self.observation_space = TextSpace()
        self.action_space = CommandSpace(self._sample_pool, vocabulary=self.command_vocabulary)
        self._task_id: str | None = None
        self._goal = ""
        self._actions: list[str] = []
        self._steps = 0
        self._progress_max = 0.0
        self._succeeded = False
        self._terminated = False
        self._last_obs = ""
        self._last_valid = True
        self._reset_rng: dict[str, Any] | None = None

    # ------------------------------------------------------------------ hooks for tasks
    def task_ids(self, split: str = "test") -> list[str]:
        """The fixed task ids of a split (``"train"`` or ``"test"``)."""
        raise NotImplementedError

    def _load_task(self, task_id: str) -> tuple[str, str]:
        """Build the world of ``task_id``; return ``(goal, first observation)``.

        ``self.np_random`` is seeded when this runs; use it for any randomness.
        """
        raise NotImplementedError

    def _step(self, action: str) -> StepOutcome:
        """Apply a stripped command (never ``check valid actions``); must not raise on bad input."""
        raise NotImplementedError

    def _progress(self) -> float:
        """The progress rate of the current state in [0, 1] (the base class keeps the running max)."""
        raise NotImplementedError

    def _success(self) -> bool:
        """Whether the current state solves the task."""
        raise NotImplementedError

    def admissible_actions(self) -> list[str] | None:
        """The commands valid in the current state, or ``None`` where the backend cannot list them."""
        return None

    def expert_action(self) -> str | None:
        """The oracle's next command from the current state (``None`` if it has none)."""
        return None

    def oracle_value(self) -> float | None:
        """The oracle's value of the current state in [0, 1] (``None``: the task has none).

        RM evaluation (:func:`agentrm_gym.rm.metrics.oracle_value`) labels states with it; a task that knows
        a distance instead overrides :meth:`distance_to_goal`.
        """
        return None

    def distance_to_goal(self) -> float | None:
        """The oracle's number of steps from the current state to the goal (``None``: the task has none);
        RM evaluation turns it into ``1 - d / d0`` with ``d0`` the distance at reset."""
        return None

    def perturbation_table(self) -> Any:
        """The task's :class:`~agentrm_gym.perturbation.Perturbation` (renamed grammar, goal paraphrases) for
        ``perturbation >= 1``, or ``None`` where the task has none (then only level 0 exists)."""
        return None

    def instruction(self) -> str:
        """The task's instruction for an agent: what the env is and its action grammar (AgentBoard style)."""
        return (self.__doc__ or self.task_name).strip().split("\n\n")[0]

    def _get_state(self) -> Any:
        """Native snapshot of the world; raise ``NotImplementedError`` to use replay."""
        raise NotImplementedError

    def _set_state(self, state: Any) -> None:
        """Restore a native snapshot returned by :meth:`_get_state`."""
        raise NotImplementedError

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        task_id = options.pop("task_id", None)
        if task_id is None:
            ids = self.task_ids(self.split)
            if not ids:
                raise UnknownTask(f"{self.task_name}: the {self.split!r} split is empty")
            task_id = ids[int(self.np_random.integers(len(ids)))]
        else:
            task_id = str(task_id)
        self._reset_rng = copy.deepcopy(self.np_random.bit_generator.state)
        return self._start(task_id)

    def _start(self, task_id: str) -> tuple[str, dict[str, Any]]:
        self._task_id = task_id
        self._actions = []
        self._steps = 0
        self._succeeded = False
        self._terminated = False
        self._last_valid = True
        self._goal, obs = self._load_task(task_id)
        self._succeeded = bool(self._success())
        self._progress_max = 1.0 if self._succeeded else self._clip(self._progress())
        self._last_obs = obs
        if self.render_mode == "human":
            self.render()
        return obs, self._info()

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._task_id is None:
            raise ResetNeeded(f"{self.task_name}: call reset() before step()")
        command = normalize_action(action)
        self._actions.append(command)
        self._steps += 1
        if self._terminated:
            outcome = StepOutcome("The episode is over. Please reset the environment.", valid=False, terminal=True)
        elif command.lower().rstrip(".") == CHECK_VALID_ACTIONS:
            outcome = StepOutcome(self._valid_actions_text(), valid=True)
        else:
            outcome = self._step(command)
        prev = self._progress_max
        if not self._terminated:
            self._succeeded = self._succeeded or bool(self._success())
            current = 1.0 if self._succeeded else self._clip(self._progress())
            self._progress_max = max(prev, current)
            self._terminated = self._succeeded or outcome.terminal
        self._last_obs = outcome.observation
        self._last_valid = outcome.valid
        reward = float(self._progress_max - prev)
        if self.render_mode == "human":
            self.render()
        return outcome.observation, reward, self._terminated, False, self._info()

    def render(self) -> str | None:
        text = f"Goal: {self._goal}\n{self._last_obs}"
        if self.render_mode == "human":
            print(text)
            return None
        return text

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> Snapshot:
        """An opaque, picklable state; :meth:`restore` returns the env to it exactly."""
        if self._task_id is None or self._reset_rng is None:
            raise ResetNeeded(f"{self.task_name}: call reset() before snapshot()")
        try:
            native = self._get_state()
        except NotImplementedError:
            native = None
        return Snapshot(
            task_id=self._task_id,
            reset_rng=copy.deepcopy(self._reset_rng),
            rng=copy.deepcopy(self.np_random.bit_generator.state),
            actions=tuple(self._actions),
            steps=self._steps,
            progress=self._progress_max,
            success=self._succeeded,
            terminated=self._terminated,
            observation=self._last_obs,
            action_valid=self._last_valid,
            native=native,
        )

    def restore(self, state: Snapshot) -> None:
        """Return to a snapshot: natively when the task supports it, by replaying the actions otherwise."""
        if not isinstance(state, Snapshot):
            raise TypeError(f"restore() takes a Snapshot from snapshot(), got {type(state).__name__}")
        if state.native is not None:
            if self._task_id != state.task_id:
                self._task_id = state.task_id
                self._goal, _ = self._load_task(state.task_id)
            self._set_state(copy.deepcopy(state.native))
        else:
            self.replay(state.task_id, state.reset_rng, state.actions)
        self._task_id = state.task_id
        self._reset_rng = copy.deepcopy(state.reset_rng)
        self.np_random.bit_generator.state = copy.deepcopy(state.rng)
        self._actions = list(state.actions)
        self._steps = state.steps
        self._progress_max = state.progress
        self._succeeded = state.success
        self._terminated = state.terminated
        self._last_obs = state.observation
        self._last_valid = state.action_valid

    def replay(self, task_id: str, reset_rng: dict[str, Any], actions: tuple[str, ...] | list[str]) -> None:
        """Rebuild a state from reset by replaying ``actions`` (the fallback snapshot mechanism)."""
        self.np_random.bit_generator.state = copy.deepcopy(reset_rng)
        self._reset_rng = copy.deepcopy(reset_rng)
        self._start(task_id)
        for a in actions:
            self.step(a)

    # ------------------------------------------------------------------ helpers
    @property
    def task_id(self) -> str | None:
        return self._task_id

    @property
    def goal(self) -> str:
        return self._goal

    @property
    def progress(self) -> float:
        return self._progress_max

    @property
    def success(self) -> bool:
        return self._succeeded

    @property
    def steps(self) -> int:
        return self._steps

    @property
    def actions(self) -> list[str]:
        return list(self._actions)

    @property
    def last_observation(self) -> str:
        return self._last_obs

    @staticmethod
    def _clip(p: float) -> float:
        return float(min(1.0, max(0.0, p)))

    def _valid_actions_text(self) -> str:
        acts = self.admissible_actions()
        if acts is None:
            return "The valid actions cannot be listed in this environment."
        return "You can take the following actions: " + ", ".join(acts)

    def _sample_pool(self) -> list[str] | None:
        if self._task_id is None or self._terminated:
            return None
        return self.admissible_actions()

    def _info(self) -> dict[str, Any]:
        return {
            "task": self.task_name,
            "task_id": self._task_id,
            "goal": self._goal,
            "progress": self._progress_max,
            "success": self._succeeded,
            "admissible_actions": None if self._terminated else self.admissible_actions(),
            "action_valid": self._last_valid,
            "steps": self._steps,
        } | ({"perturbation": self.perturbation} if self.perturbation else {})
