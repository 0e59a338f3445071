"""Reward specs of the LLM policy's trainer: per-turn rewards, returns-to-go and group advantages.

An episode of ``T`` turns has the progress rates ``p_0`` (after reset) ... ``p_T`` (after the last turn), a
success flag, and, for the shaped specs, a potential ``V(s_0) ... V(s_T)`` of its states. A spec turns these
into one reward per turn, ``r_0 ... r_{T-1}`` (docs/rl.md):

=============  =======================================================================================
``success``    ``r_{T-1} = 1`` on success, else 0; every other turn 0 (what a deployment observes)
``outcome``    ``r_{T-1} = p_T`` (the final progress); every other turn 0 (what LLM-RL trainers use today)
``rm``         outcome plus ``coef * (gamma * V(s_{t+1}) - V(s_t))`` with ``V`` the learned RM (``--rm``)
``rm-only``    ``coef * (gamma * V(s_{t+1}) - V(s_t))`` alone (a user with no outcome signal)
``progress``   ``r_t = p_{t+1} - p_t``, the env's own deltas (an oracle dense reward: the ceiling)
``heuristic``  outcome plus the same shaping with ``V`` = :class:`~agentrm_gym.rm.heuristic.FewerRepeatsRewardModel`
=============  =======================================================================================

Potential-based shaping (Ng et al. 1999) keeps the optimal policy: with ``gamma = 1`` an episode's shaped
return is its outcome plus ``coef * (V(s_T) - V(s_0))``.

Credit (:func:`returns_to_go`, :func:`group_advantages`): the return-to-go of turn ``t`` is
``G_t = sum_{k >= t} gamma^(k - t) r_k``; the baseline of an episode is the mean *episode* return ``G_0`` of
the rollouts of the same task id (GRPO's group, at the episode level), so ``A_t = G_t - mean_group(G_0)``.
Advantages are never normalised per turn index (verl #7244: that biases toward length); the trainer spreads
``A_t`` over every token of turn ``t``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentrm_gym.trajectory import AgentState

#: The reward specs, in the order the experiment's table lists them.
REWARD_SPECS = ("success", "outcome", "rm", "rm-only", "progress", "heuristic")
#: The specs whose rewards need a potential ``V`` of every state.
SHAPED_SPECS = ("rm", "rm-only", "heuristic")
#: The specs that need a learned RM (``--rm``).
RM_SPECS = ("rm", "rm-only")
#: The value of one repeated action in the ``heuristic`` potential (a fraction of the outcome's [0, 1] range).
HEURISTIC_SCALE = 0.05


class UnknownRewardSpec(ValueError):
    """A reward spec name that is not one of :data:`REWARD_SPECS`."""


def _potential_deltas(values: Sequence[float], gamma: float, coef: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return coef * (gamma * v[1:] - v[:-1])


def turn_rewards(spec: str, progress: Sequence[float], success: bool, values: Sequence[float] | None = None,
                 gamma: float = 1.0, coef: float = 1.0) -> np.ndarray:
    """The per-turn rewards of one episode under ``spec`` (see the module docstring's table).

    Args:
        spec: one of :data:`REWARD_SPECS`.
        progress: ``p_0 ... p_T``: the progress after reset, then after each of the ``T`` turns.
        success: whether the episode ended in success.
        values: ``V(s_0) ... V(s_T)`` of the potential (needed by :data:`SHAPED_SPECS`).
        gamma: the discount inside the potential difference.
        coef: the shaping's scale.

    Returns:
        ``T`` rewards (float64).
    """
    if spec not in REWARD_SPECS:
        raise UnknownRewardSpec(f"unknown reward spec {spec!r}; use one of {', '.join(REWARD_SPECS)}")
    p = np.asarray(progress, dtype=np.float64)
    turns = len(p) - 1
    if turns < 0:
        raise ValueError("progress needs at least p_0 (the progress after reset)")
    rewards = np.zeros(turns)
    if turns == 0:
        return rewards
    if spec == "progress":
        return np.diff(p)
    if spec == "success":
        rewards[-1] = 1.0 if success else 0.0
        return rewards
    if spec != "rm-only":
        rewards[-1] = p[-1]
    if spec in SHAPED_SPECS:
        if values is None or len(values) != turns + 1:
            raise ValueError(f"spec {spec!r} needs one potential value per state ({turns + 1}), got "
                             f"{None if values is None else len(values)}")
        rewards += _potential_deltas(values, gamma, coef)
    return rewards


def returns_to_go(rewards: Sequence[float], gamma: float = 1.0) -> np.ndarray:
    """``G_t = r_t + gamma * G_{t+1}`` for every turn (``G_T = 0``)."""
    out = np.zeros(len(rewards))
    acc = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = float(rewards[t]) + gamma * acc
        out[t] = acc
    return out


def group_advantages(returns: Sequence[np.ndarray], groups: Sequence[Hashable], scale: str = "none") -> list[np.ndarray]:
    """Per-turn advantages ``A_{i,t} = G_{i,t} - mean_{j in group(i)} G_{j,0}`` (an episode-level baseline).

    Args:
        returns: each episode's returns-to-go ``G_{i,0..T_i-1}``.
        groups: each episode's group key (its task id: the rollouts of one prompt).
        scale: ``"none"`` (Dr. GRPO: no division) or ``"group_std"`` (GRPO: divide by the std of the
            group's episode returns, where it is > 0). Never per turn index.
    """
    if scale not in ("none", "group_std"):
        raise ValueError(f"scale must be 'none' or 'group_std', got {scale!r}")
    firsts: dict[Hashable, list[float]] = {}
    for g, ret in zip(groups, returns, strict=True):
        firsts.setdefault(g, []).append(float(ret[0]) if len(ret) else 0.0)
    out = []
    for g, ret in zip(groups, returns, strict=True):
        base = float(np.mean(firsts[g]))
        adv = np.asarray(ret, dtype=np.float64) - base
        if scale == "group_std":
            std = float(np.std(firsts[g]))
            if std > 1e-8:
                adv = adv / std
        out.append(adv)
    return out


class RunningMoments:
    """Running mean and variance (Chan et al.'s parallel update): PPO-max's reward scaling.

    The trainer divides per-turn rewards by the running std of episode returns (no mean subtracted: a
    constant added to every turn would change which lengths are preferred) and clips them to ``+-clip``.
    """

    def __init__(self) -> None:
        self.mean, self.var, self.count = 0.0, 1.0, 0.0

    def update(self, xs: Sequence[float]) -> None:
        x = np.asarray(xs, dtype=np.float64)
        if not len(x):
            return
        m, v, n = float(x.mean()), float(x.var()), float(len(x))
        if self.count == 0:
            self.mean, self.var, self.count = m, v, n
            return
        total = self.count + n
        delta = m - self.mean
        self.mean += delta * n / total
        self.var = (self.var * self.count + v * n + delta ** 2 * self.count * n / total) / total
        self.count = total

    @property
    def std(self) -> float:
        return float(np.sqrt(max(self.var, 0.0)))

    def state_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, d: dict[str, float]) -> None:
        self.mean, self.var, self.count = float(d["mean"]), float(d["var"]), float(d["count"])


@dataclass
class RewardSpec:
    """A named reward spec with its potential.

    Attributes:
        name: one of :data:`REWARD_SPECS`.
        potential: the RM whose ``score(states)`` is ``V`` (``rm``, ``rm-only``), the heuristic's
            (``heuristic``), or ``None``.
        coef: the shaping's scale.
        gamma: the discount inside the potential difference (and of the returns).
    """

    name: str
    potential: Any = None
    coef: float = 1.0
    gamma: float = 1.0

    @property
    def shaped(self) -> bool:
        return self.name in SHAPED_SPECS

    def values(self, states: Sequence[AgentState]) -> np.ndarray:
        """``V`` of ``states`` in one call (empty for an unshaped spec)."""
        if not self.shaped or not states:
            return np.zeros(len(states))
        score = getattr(self.potential, "score", self.potential)
        return np.asarray(score(list(states)), dtype=np.float64).reshape(-1)

    def rewards(self, progress: Sequence[float], success: bool, values: Sequence[float] | None = None) -> np.ndarray:
        return turn_rewards(self.name, progress, success, values, self.gamma, self.coef)


def make_reward_spec(name: str, rm: Any = None, coef: float = 1.0, gamma: float = 1.0,
                     heuristic_scale: float = HEURISTIC_SCALE) -> RewardSpec:
    """The :class:`RewardSpec` ``name``; ``rm`` (any spec :func:`~agentrm_gym.rm.make_reward_model` takes, or a
    loaded RM) is needed by ``rm`` and ``rm-only`` and ignored otherwise."""
    if name not in REWARD_SPECS:
        raise UnknownRewardSpec(f"unknown reward spec {name!r}; use one of {', '.join(REWARD_SPECS)}")
    potential = None
    if name in RM_SPECS:
        if rm is None:
            raise ValueError(f"reward spec {name!r} needs an RM: pass --rm SPEC (a run or RM directory, a URL, "
                             "python:module:attr)")
        from agentrm_gym.rm.spec import make_reward_model

        potential = make_reward_model(rm)
    elif name == "heuristic":
        from agentrm_gym.rm.heuristic import FewerRepeatsRewardModel

        potential = FewerRepeatsRewardModel(scale=heuristic_scale)
    return RewardSpec(name, potential, coef, gamma)
