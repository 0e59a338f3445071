"""Wrappers for text envs: RM process rewards, a Discrete adapter, vector features, a trajectory recorder.

Typical stable-baselines3 stack (inner to outer)::

    env = make("maze")                              # text actions, text observations
    env = ProcessRewardWrapper(env, rm)             # dense RM reward (needs the text state)
    env = AdmissibleActionsDiscrete(env, 8)         # Discrete(8) + action_masks() for MaskablePPO
    env = TextFeatures(env, dim=256)                # Box observation

:mod:`agentrm_gym.wrappers.sb3` builds this stack from a reward spec (``make_rl_env``, ``adapt_for_sb3``);
the trainers that consume it live in :mod:`agentrm_gym.rl`.
"""

from __future__ import annotations

from agentrm_gym.wrappers.discrete import AdmissibleActionsDiscrete
from agentrm_gym.wrappers.features import TextFeatures, hash_features
from agentrm_gym.wrappers.process_reward import ProcessRewardWrapper, SuccessReward
from agentrm_gym.wrappers.recorder import TrajectoryRecorder

__all__ = [
    "AdmissibleActionsDiscrete",
    "ProcessRewardWrapper",
    "SuccessReward",
    "TextFeatures",
    "TrajectoryRecorder",
    "hash_features",
]
