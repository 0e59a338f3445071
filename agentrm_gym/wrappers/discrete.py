"""A ``Discrete`` action space over a text env's admissible actions, with MaskablePPO's action masks.

Action ``i`` plays the ``i``-th admissible action of the current state (in the env's own order). Indices at
or beyond the number of admissible actions are masked out by :meth:`AdmissibleActionsDiscrete.action_masks`
(sb3-contrib's MaskablePPO protocol); an agent that plays one anyway sends an empty command, which the env
answers as an invalid action (no state change, ``action_valid=False``, the step counts). Lists longer than
``max_actions`` are cut to their first ``max_actions`` entries. ``info["action_text"]`` holds the command.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from agentrm_gym.core import CHECK_VALID_ACTIONS


class AdmissibleActionsDiscrete(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """``Discrete(max_actions)`` over the current admissible actions.

    Args:
        env: a text env whose ``info["admissible_actions"]`` (or ``admissible_actions()``) lists commands.
        max_actions: the size of the discrete space.
        drop_meta: leave ``check valid actions`` out of the list.
    """

    def __init__(self, env: gym.Env, max_actions: int = 32, drop_meta: bool = True):
        if max_actions < 1:
            raise ValueError(f"max_actions must be >= 1, got {max_actions}")
        gym.utils.RecordConstructorArgs.__init__(self, max_actions=max_actions, drop_meta=drop_meta)
        gym.ActionWrapper.__init__(self, env)
        self.max_actions = max_actions
        self.drop_meta = drop_meta
        self.action_space = gym.spaces.Discrete(max_actions)
        self._admissible: list[str] = []

    def _update(self, info: dict[str, Any]) -> None:
        acts = info.get("admissible_actions")
        if acts is None:
            fn = getattr(self.env.unwrapped, "admissible_actions", None)
            acts = fn() if callable(fn) else None
        acts = [a for a in (acts or []) if not (self.drop_meta and a.strip().lower() == CHECK_VALID_ACTIONS)]
        self._admissible = acts[: self.max_actions]

    @property
    def admissible(self) -> list[str]:
        """The commands that indices ``0 .. len - 1`` play now."""
        return list(self._admissible)

    def action(self, action: Any) -> str:
        i = int(np.asarray(action).reshape(-1)[0]) if not isinstance(action, int | np.integer) else int(action)
        return self._admissible[i] if 0 <= i < len(self._admissible) else ""

    def action_masks(self) -> np.ndarray:
        """Boolean mask of the playable indices (never all False: index 0 stays open on an empty list)."""
        mask = np.zeros(self.max_actions, dtype=bool)
        mask[: len(self._admissible)] = True
        if not mask.any():
            mask[0] = True
        return mask

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._update(info)
        if not self._admissible:
            raise ValueError(
                f"{type(self.env.unwrapped).__name__} lists no admissible actions after reset; "
                "AdmissibleActionsDiscrete needs an env that can list them"
            )
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        text = self.action(action)
        obs, reward, terminated, truncated, info = self.env.step(text)
        info = dict(info)
        info["action_text"] = text
        self._update(info)
        return obs, reward, terminated, truncated, info
