"""Trainers: code that improves a policy by playing the text envs under a reward (sparse, progress or an RM's).

Where things are:

* :mod:`~agentrm_gym.rl.ppo` - :func:`train_maskable_ppo`: sb3-contrib's MaskablePPO on a text env adapted
  by :func:`agentrm_gym.wrappers.sb3.make_rl_env` (Discrete admissible actions, hashed features, the reward
  chosen by a spec), with success-rate evaluations, TensorBoard scalars and SB3 callbacks of the caller;
* :mod:`~agentrm_gym.rl.callbacks` - SB3 callbacks of ours (:func:`progress_bar`, a tqdm bar on stderr).

The envs, the reward wrappers and the SB3 adapters stay in :mod:`agentrm_gym.wrappers`; a trainer here only
consumes them. Issue 22 adds the multi-turn policy-gradient trainer of the LLM policy (process rewards from an
RM) beside MaskablePPO. stable-baselines3 and sb3-contrib come with the ``[rl]`` extra and are imported only
when a trainer runs: ``import agentrm_gym.rl`` works without them, training raises
:class:`~agentrm_gym.core.MissingExtra` naming ``pip install 'agentrm-gym[rl]'``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HackingAlarm", "PPOResult", "PolicyGradientTrainer", "RLConfig", "evaluate_success",
           "experiment_preset", "make_reward_spec", "progress_bar", "require_sb3", "run_experiment",
           "train_maskable_ppo"]

_LAZY = {
    "PPOResult": "agentrm_gym.rl.ppo",
    "evaluate_success": "agentrm_gym.rl.ppo",
    "require_sb3": "agentrm_gym.rl.ppo",
    "train_maskable_ppo": "agentrm_gym.rl.ppo",
    "progress_bar": "agentrm_gym.rl.callbacks",
    "PolicyGradientTrainer": "agentrm_gym.rl.policy_gradient",
    "RLConfig": "agentrm_gym.rl.policy_gradient",
    "make_reward_spec": "agentrm_gym.rl.rewards",
    "HackingAlarm": "agentrm_gym.rl.alarm",
    "run_experiment": "agentrm_gym.rl.experiment",
    "experiment_preset": "agentrm_gym.rl.experiment",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agentrm_gym.rl' has no attribute {name!r}")
