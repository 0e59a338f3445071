"""stable-baselines3 on text envs: the adapter stack that gives a text env SB3's spaces and a chosen reward.

:func:`make_rl_env` builds ``reward wrapper -> AdmissibleActionsDiscrete -> TextFeatures`` around a text env,
with the reward chosen by a spec string: ``sparse`` (1 on success), ``progress`` (the env's own reward, the
progress increase), ``rm:SPEC`` (sparse + potential shaping by the RM that
:func:`agentrm_gym.rm.make_reward_model` makes of ``SPEC``); :func:`adapt_for_sb3` is the same stack around an
env already made (SB3's ``wrapper_class``). The adapters are plain Gymnasium
wrappers and need no SB3; the trainer that consumes them is :func:`agentrm_gym.rl.ppo.train_maskable_ppo`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from agentrm_gym.wrappers.discrete import AdmissibleActionsDiscrete
from agentrm_gym.wrappers.features import TextFeatures
from agentrm_gym.wrappers.process_reward import ProcessRewardWrapper, SuccessReward


def make_rl_env(
    env_id: str, reward: str = "sparse", split: str = "train", max_actions: int = 16, feature_dim: int = 256,
    coef: float = 1.0, gamma: float = 0.99, rm: Any = None, env_kwargs: dict[str, Any] | None = None,
) -> gym.Env:
    """A text env adapted for SB3: Discrete actions with masks, Box features, the chosen reward.

    Args:
        env_id: a registered id or task name.
        reward: ``sparse``, ``progress`` or ``rm:SPEC`` (sparse + potential shaping by that RM).
        rm: an already loaded RM to use with ``reward="rm"`` (saves loading it once per env).
        coef, gamma: the shaping's scale and discount (use the learner's gamma).
    """
    from agentrm_gym.registry import make

    env = make(env_id, split=split, **(env_kwargs or {}))
    return adapt_for_sb3(env, reward, max_actions, feature_dim, coef, gamma, rm=rm)


def adapt_for_sb3(
    env: gym.Env, reward: str = "sparse", max_actions: int = 16, feature_dim: int = 256, coef: float = 1.0,
    gamma: float = 0.99, rm: Any = None,
) -> gym.Env:
    """The adapter stack of :func:`make_rl_env` around an already made text env.

    It takes the env first, so it serves as stable-baselines3's ``wrapper_class``, whose VecEnvs need ``Box``
    observations and cannot hold a text env's ``Text`` space::

        from stable_baselines3.common.env_util import make_vec_env
        venv = make_vec_env("agentrm/Maze-v0", n_envs=4, wrapper_class=adapt_for_sb3,
                            wrapper_kwargs={"max_actions": 16, "feature_dim": 256})

    (``make_vec_env`` applies it outside its ``Monitor``, which so records the env's own progress reward.)
    The arguments are those of :func:`make_rl_env`.
    """
    if reward == "progress":
        pass
    elif reward == "sparse":
        env = SuccessReward(env)
    elif reward.startswith("rm"):
        if rm is None:
            spec = reward.partition(":")[2]
            if not spec:
                raise ValueError("reward 'rm:SPEC' needs an RM spec after the colon (an RM or run directory, a "
                                 "URL, python:module:attr)")
            from agentrm_gym.rm import make_reward_model

            rm = make_reward_model(spec)
        env = ProcessRewardWrapper(SuccessReward(env), rm, mode="potential", coef=coef, gamma=gamma)
    else:
        raise ValueError(f"reward must be 'sparse', 'progress' or 'rm:SPEC', got {reward!r}")
    env = AdmissibleActionsDiscrete(env, max_actions=max_actions)
    return TextFeatures(env, dim=feature_dim)
