"""The strongest simple baseline a learned RM must beat: "fewer repeated actions".

:class:`FewerRepeatsRewardModel` scores a state by minus the number of its actions that repeat an earlier
action of the same episode. As a Best-of-N selector it picks the candidate with the fewest repeats (ties
share the pick; :func:`agentrm_gym.train.table` averages ties); as an RL potential it shapes rewards by
``gamma * V(s') - V(s)``, so a turn that repeats an action costs ``scale``. It reads nothing a
deployed agent lacks (no env score, no oracle), which is why every learned RM's gain is reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agentrm_gym.trajectory import AgentState


def repeated_actions(state: AgentState) -> int:
    """How many of ``state``'s actions repeat an earlier action of the episode (whitespace and case folded)."""
    actions = [" ".join(step.action.lower().split()) for step in state.steps]
    return len(actions) - len(set(actions))


class FewerRepeatsRewardModel:
    """``-scale * repeated_actions(state)``: the "fewer repeated actions" heuristic as a reward model.

    Args:
        scale: the value of one repeat (1.0 ranks like the count; a potential for RL shaping uses a fraction
            of the outcome's range, e.g. 0.05).
    """

    kind = "heuristic"

    def __init__(self, scale: float = 1.0):
        self.scale = float(scale)

    def score(self, states: Sequence[AgentState]) -> np.ndarray:
        return np.array([-self.scale * repeated_actions(s) for s in states], dtype=np.float64)

    __call__ = score
