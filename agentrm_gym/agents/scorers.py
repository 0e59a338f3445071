"""Scorers for planners: anything that maps a batch of agent states to floats.

A planner's scorer is either a callable ``scorer(states) -> np.ndarray`` or an object with
``.score(states)`` (a reward model from :mod:`agentrm_gym.rm`); :func:`as_scorer` accepts both.
:class:`ProgressScorer` is the env's own progress rate recorded in the last step (an *oracle upper
bound*: it reads the environment's reward, which a deployed agent does not have). Scorers that know a
particular task live with that task's env and are found through the task table:
:func:`agentrm_gym.registry.task_scorer` (e.g. ``task_scorer("Maze")``); a task without one whose env has
an oracle hook (``oracle_value`` / ``distance_to_goal``) gets :class:`OracleHookScorer`, which replays each
state in an env of its own and asks the hook.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agentrm_gym.core import oracle_value_of, unwrap_text_env
from agentrm_gym.trajectory import AgentState

Scorer = Callable[[Sequence[AgentState]], np.ndarray]


def as_scorer(scorer: Any) -> Scorer | None:
    """A callable scorer from a callable, an object with ``.score(states)``, or ``None``."""
    if scorer is None:
        return None
    fn = scorer.score if hasattr(scorer, "score") else scorer
    if not callable(fn):
        raise TypeError(f"a scorer must be callable or have .score(states), got {type(scorer).__name__}")

    def call(states: Sequence[AgentState]) -> np.ndarray:
        values = np.asarray(fn(list(states)), dtype=np.float64).reshape(-1)
        if values.shape[0] != len(states):
            raise ValueError(f"scorer returned {values.shape[0]} values for {len(states)} states")
        return values

    return call


class ProgressScorer:
    """The env's progress rate of a state (its last step's ``progress``): an oracle upper bound."""

    def score(self, states: Sequence[AgentState]) -> np.ndarray:
        return np.array([s.steps[-1].progress if s.steps else 0.0 for s in states], dtype=np.float64)

    __call__ = score


class OracleHookScorer:
    """A task's oracle hooks as a planner scorer: each state is replayed (reset to its ``task_id``, then its
    actions) in an env of the scorer's own, whose ``oracle_value()`` or ``1 - distance_to_goal() / d0``
    is the score (0.0 where the hook has no value). An oracle, like :class:`ProgressScorer`.

    Args:
        task: the task's name or id; envs are made on first use, one per split that a state's ``task_id``
            belongs to (the test split's, else the train split's).
    """

    def __init__(self, task: str):
        self.task = task
        self._envs: dict[str, Any] = {}
        self._test_ids: frozenset[str] = frozenset()

    def _env(self, task_id: str) -> Any:
        """The env of the split that holds ``task_id`` (the test split's ids are listed once)."""
        from agentrm_gym.registry import make

        if "test" not in self._envs:
            self._envs["test"] = make(self.task, split="test", disable_env_checker=True)
            self._test_ids = frozenset(unwrap_text_env(self._envs["test"]).task_ids("test"))
        split = "test" if task_id in self._test_ids else "train"
        if split not in self._envs:
            self._envs[split] = make(self.task, split=split, disable_env_checker=True)
        return self._envs[split]

    def _one(self, state: AgentState) -> float:
        env = self._env(state.task_id)
        env.reset(seed=0, options={"task_id": state.task_id})
        base = unwrap_text_env(env)
        d0 = base.distance_to_goal()
        for step in state.steps:
            base.step(step.action)
        v = oracle_value_of(base, None if d0 is None else max(1.0, float(d0)))
        return 0.0 if v is None else v

    def score(self, states: Sequence[AgentState]) -> np.ndarray:
        return np.array([self._one(s) for s in states], dtype=np.float64)

    __call__ = score

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()
