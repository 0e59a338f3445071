"""Pieces of issue 21's train-only analyses (``agentrm analyze labels | rm-candidates``) that need no run."""

from __future__ import annotations

import numpy as np
import pytest

from agentrm_gym.train.analyses_candidates import repeat_stats
from agentrm_gym.train.analyses_labels import _critic_td, require_two_tasks
from agentrm_gym.trajectory import AgentState, Step


def _state(actions: list[str], observations: list[str]) -> AgentState:
    return AgentState(task="Maze", goal="g", observation="start", task_id="0",
                      steps=tuple(Step(action=a, observation=o) for a, o in zip(actions, observations, strict=True)))


def test_repeat_stats_count_actions_pairs_and_observations() -> None:
    s = _state(["go north", "Go  north", "look", "go north", "look"], ["wall", "wall", "room", "hall", "room"])
    got = repeat_stats(s)
    # actions: go north x3, look x2 -> 3 repeats; (action, obs): (go north, wall) x2, (look, room) x2 -> 2;
    # observations: wall x2, room x2 -> 2; the last five actions hold 3 repeats
    assert got == pytest.approx([3 / 20, 2 / 20, 2 / 20, 3 / 5])
    assert repeat_stats(_state([], [])) == pytest.approx([0, 0, 0, 0])


def test_critic_td_with_lambda_one_is_the_monte_carlo_return() -> None:
    steps = ["a", "b", "c"]
    records = [{"state": _state(steps[:t], steps[:t])} for t in range(4)]  # one rollout, depths 0..3
    records += [{"state": _state(steps[:t], steps[:t])} for t in range(3)]  # another, depths 0..2
    returns = np.array([0.5] * 4 + [1.0] * 3)
    x = np.random.default_rng(0).normal(size=(7, 3))
    train = np.ones(7, dtype=bool)
    assert _critic_td(x, returns, records, train, 1.0, gamma=1.0, lam=1.0) == pytest.approx(returns)
    td = _critic_td(x, returns, records, train, 1.0, gamma=1.0, lam=0.0)  # TD(0): the critic's next value
    assert td[3] == pytest.approx(0.5) and td[6] == pytest.approx(1.0)  # a rollout's last state keeps R
    assert not np.allclose(td, returns)


def test_leave_one_task_out_needs_two_tasks() -> None:
    require_two_tasks([{"task": "A"}, {"task": "B"}], "labels")
    with pytest.raises(ValueError, match="at least two held-in tasks"):
        require_two_tasks([{"task": "A"}], "labels")
