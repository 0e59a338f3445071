"""Scorers for planners: anything that maps a batch of agent states to floats.

A planner's scorer is either a callable ``scorer(states) -> np.ndarray`` or an object with
``.score(states)`` (a reward model from :mod:`agentrm_gym.rm`); :func:`as_scorer` accepts both.
:class:`ProgressScorer` is the env's own progress rate recorded in the last step (an *oracle upper
bound*: it reads the environment's reward, which a deployed agent does not have). Scorers that know a
particular task live with that task's env and are found through the task table:
:func:`agentrm_gym.registry.task_scorer` (e.g. ``task_scorer("Maze")``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

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
