"""Scorers for planners: anything that maps a batch of agent states to floats.

A planner's scorer is either a callable ``scorer(states) -> np.ndarray`` or an object with
``.score(states)`` (a reward model from :mod:`agentrm_gym.rm`); :func:`as_scorer` accepts both.

* :class:`ProgressScorer` - the env's own progress rate recorded in the last step (an *oracle upper
  bound*: it reads the environment's reward, which a deployed agent does not have);
* :class:`MazeDistanceScorer` - Maze's oracle shortest-path distance to the goal, from the position
  parsed out of the observations (tests and benchmarks of the planners).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
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


_POSITION = re.compile(r"current position is at position (\d+),\s*(\d+)")
_GOAL = re.compile(r"goal is at position (\d+),\s*(\d+)")


@lru_cache(maxsize=256)
def _maze_distances(task_id: str) -> tuple[dict[tuple[int, int], int], tuple[int, int]]:
    from agentrm_gym.envs.maze import MazeEnv, bfs_distances

    walls, _, goal = MazeEnv()._world(task_id)
    return bfs_distances(walls, goal), goal


class MazeDistanceScorer:
    """``1 - d(position) / d(start)`` with ``d`` the BFS distance to the goal (1.0 at the goal).

    The position is parsed from the latest observation that states one ("Success" means the goal); the
    maze comes from the state's ``task_id``. Unlike :class:`ProgressScorer` it is not monotone: walking
    away from the goal lowers the score.
    """

    def score(self, states: Sequence[AgentState]) -> np.ndarray:
        return np.array([self._one(s) for s in states], dtype=np.float64)

    __call__ = score

    def _one(self, state: AgentState) -> float:
        dist, goal = _maze_distances(state.task_id)
        start = _POSITION.search(state.observation)
        d0 = dist.get((int(start[1]), int(start[2])), 1) if start else 1
        for obs in [s.observation for s in reversed(state.steps)] + [state.observation]:
            if obs.strip() == "Success":
                return 1.0
            m = _POSITION.search(obs)
            if m:
                d = dist.get((int(m[1]), int(m[2])), d0)
                return 1.0 - d / max(1, d0)
        return 0.0
