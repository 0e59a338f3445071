"""Dense process rewards from a reward model, for any Gymnasium text env.

:class:`ProcessRewardWrapper` turns an RM's values ``V(s)`` of the agent's state into rewards:

* ``"potential"`` (default): ``r + coef * (gamma * V(s') - V(s))``, potential-based shaping (Ng et al.
  1999), which keeps the optimal policy. Over an episode of ``T`` steps the shaped rewards telescope:
  ``sum_t gamma^t r'_t = sum_t gamma^t r_t + coef * (gamma^T V(s_T) - V(s_0))``; with ``gamma=1`` the
  plain sums differ by ``coef * (V(s_T) - V(s_0))``. The terminal state's value is used as the RM gives
  it (not forced to 0), so that identity holds exactly; set ``gamma`` to the learner's discount for the
  policy-invariance guarantee.
* ``"replace"``: ``V(s')``, the RM alone.
* ``"add"``: ``r + coef * V(s')``.

The wrapper keeps the episode's :class:`~agentrm_gym.trajectory.AgentState` and ``V`` of the current state,
so each step costs one RM call (reset one more); nothing carries over across ``reset``. ``info`` gains
``env_reward``, ``rm_value`` (``V(s')``) and ``rm_reward`` (the reward returned). For envs that are not
agentrm text envs, ``state_fn(env, obs, info, history)`` builds the state, with ``history`` the
:class:`~agentrm_gym.trajectory.Step` list of the episode so far (empty after reset).

:class:`SuccessReward` replaces the env reward by 1 on success, 0 otherwise: the sparse baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from agentrm_gym.trajectory import AgentState, Step

MODES = ("potential", "replace", "add")
StateFn = Callable[[gym.Env, Any, dict[str, Any], list[Step]], AgentState]


def _as_text(x: Any) -> str:
    if isinstance(x, bytes):
        return x.decode("utf-8", errors="replace")
    return x if isinstance(x, str) else str(x)


class ProcessRewardWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Inject an RM as a dense process reward (see the module docstring for the formulas).

    Args:
        env: a text env (``info`` with ``task``/``goal``) or any env with a ``state_fn``.
        rm: a reward model, any object with ``.score(states)``, or any callable ``states -> array of values``
            (as planners take scorers; ``.score`` is used when the object has it).
        mode: ``"potential"``, ``"replace"`` or ``"add"``.
        coef: the RM term's scale.
        gamma: the discount in the potential difference.
        state_fn: ``(env, obs, info, history) -> AgentState`` for foreign envs.
    """

    def __init__(
        self, env: gym.Env, rm: Any, mode: str = "potential", coef: float = 1.0,
        gamma: float = 1.0, state_fn: StateFn | None = None,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        score = getattr(rm, "score", None)
        score_fn = score if callable(score) else rm
        if not callable(score_fn):
            raise TypeError(f"rm must be a reward model, an object with .score(states) or a callable on states, "
                            f"got {type(rm).__name__}")
        gym.utils.RecordConstructorArgs.__init__(self, mode=mode, coef=coef, gamma=gamma)
        gym.Wrapper.__init__(self, env)
        self.rm = rm
        self._score = score_fn
        self.mode = mode
        self.coef = float(coef)
        self.gamma = float(gamma)
        self.state_fn = state_fn
        self.rm_calls = 0
        self._state: AgentState | None = None
        self._history: list[Step] = []
        self._value = 0.0

    def _v(self, state: AgentState) -> float:
        self.rm_calls += 1
        return float(np.asarray(self._score([state]), dtype=np.float64).reshape(-1)[0])

    def _build(self, obs: Any, info: dict[str, Any]) -> AgentState:
        if self.state_fn is not None:
            return self.state_fn(self.env, obs, info, list(self._history))
        if self._state is None:
            return AgentState(
                task=str(info.get("task", "")), goal=str(info.get("goal", "")), observation=_as_text(obs),
                task_id=str(info.get("task_id", "") or ""),
            )
        return self._state.extend(self._history[-1])

    @property
    def state(self) -> AgentState | None:
        """The episode's current agent state."""
        return self._state

    @property
    def value(self) -> float:
        """``V`` of the current state (computed at reset / the last step)."""
        return self._value

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._state = None
        self._history = []
        self._state = self._build(obs, info)
        self._value = self._v(self._state)
        info = dict(info)
        info["rm_value"] = self._value
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise gym.error.ResetNeeded("ProcessRewardWrapper: call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        env_reward = float(reward)
        self._history.append(
            Step(action=_as_text(info.get("action_text", action)), observation=_as_text(obs), reward=env_reward,
                 progress=float(info.get("progress", 0.0)), action_valid=bool(info.get("action_valid", True)))
        )
        self._state = self._build(obs, info)
        new_value = self._v(self._state)
        if self.mode == "potential":
            shaped = env_reward + self.coef * (self.gamma * new_value - self._value)
        elif self.mode == "replace":
            shaped = new_value
        else:
            shaped = env_reward + self.coef * new_value
        self._value = new_value
        info = dict(info)
        info.update(env_reward=env_reward, rm_value=new_value, rm_reward=shaped)
        return obs, shaped, terminated, truncated, info


class SuccessReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Reward 1.0 on the step that reaches ``info["success"]``, 0.0 otherwise (the sparse baseline)."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._was_success = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._was_success = bool(info.get("success", False))
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        success = bool(info.get("success", False))
        sparse = 1.0 if success and not self._was_success else 0.0
        self._was_success = success
        info = dict(info)
        info["env_reward"] = float(reward)
        return obs, sparse, terminated, truncated, info
