"""Reward models that score an agent's state (task goal + history).

One API for every kind: ``rm.score(states) -> np.ndarray`` (also ``rm(states)``), batched and cached by the
RM input text (:mod:`agentrm_gym.rm.base`). :func:`make_reward_model` makes one of any spec (an RM or run
directory, a URL, ``python:module:attr``, an object or a function); every ``--rm`` option takes those specs.
Where things are:

* :mod:`~agentrm_gym.rm.spec` - :func:`make_reward_model`, the spec -> reward model function;
* :mod:`~agentrm_gym.rm.loading` - :func:`load_reward_model` (reads the card, builds the class its ``kind``
  names), the kind -> class table :data:`RM_KINDS` and :func:`register_rm_kind` (an RM kind of your own);
* :mod:`~agentrm_gym.rm.card` - the ``agentrm_rm.json`` card and the checks of a saved directory's files;
* :mod:`~agentrm_gym.rm.format` - RM input text: per-task header + Thought/Action/Observation history;
* :mod:`~agentrm_gym.rm.trainer` - the configs (:class:`TrainConfig`, :class:`PairwiseConfig`,
  :class:`ImplicitConfig`) and the training loop the trainers share;
* :mod:`~agentrm_gym.rm.pooled` - the pooled value RM every pipeline preset trains (kind ``pooled_value``: a
  frozen encoder's mean pooling + a ridge head, :class:`PooledConfig`, :func:`train_pooled_rm`);
* :mod:`~agentrm_gym.rm.value` - the fine-tuned value RM (kind ``value``) and :func:`train_value_rm` (MSE);
* :mod:`~agentrm_gym.rm.pairwise` - Bradley-Terry training on preference pairs (:func:`train_pairwise_rm`);
* :mod:`~agentrm_gym.rm.implicit` - ``beta * log pi/pi_ref`` (PRIME-style) and :func:`train_implicit_rm`;
* :mod:`~agentrm_gym.rm.judge` - LLM-as-judge, pointwise P("Yes") and listwise;
* :mod:`~agentrm_gym.rm.remote` - :class:`RemoteRewardModel`, a client of ``agentrm serve rm``;
* :mod:`~agentrm_gym.rm.metrics` - RMB-style pairwise / Best-of-N accuracy, Spearman, oracle comparison sets;
* :mod:`~agentrm_gym.rm.backbones` - MiniLM default, tiny from-scratch BERT / GPT-2, encoding.

torch and transformers are imported only when a model is built or loaded.
"""

from __future__ import annotations

from typing import Any

from agentrm_gym.rm.base import FunctionRewardModel, RewardModel, ScoreStats
from agentrm_gym.rm.card import CARD_NAME, RMLoadError, read_card
from agentrm_gym.rm.format import HEADER_VERSION, RMFormat
from agentrm_gym.rm.loading import RM_KINDS, load_reward_model, register_rm_kind
from agentrm_gym.rm.spec import make_reward_model
from agentrm_gym.rm.trainer import ImplicitConfig, PairwiseConfig, TrainConfig

__all__ = [
    "CARD_NAME",
    "HEADER_VERSION",
    "FunctionRewardModel",
    "ImplicitConfig",
    "ImplicitRewardModel",
    "JudgeRewardModel",
    "PairwiseConfig",
    "PooledConfig",
    "PooledValueRewardModel",
    "RMFormat",
    "RMLoadError",
    "RM_KINDS",
    "RemoteRewardModel",
    "RewardModel",
    "ScoreStats",
    "TrainConfig",
    "ValueRewardModel",
    "load_reward_model",
    "make_reward_model",
    "read_card",
    "register_rm_kind",
    "train_implicit_rm",
    "train_pairwise_rm",
    "train_pooled_rm",
    "train_value_rm",
]

_LAZY = {
    "ValueRewardModel": "agentrm_gym.rm.value",
    "train_value_rm": "agentrm_gym.rm.value",
    "train_pairwise_rm": "agentrm_gym.rm.pairwise",
    "ImplicitRewardModel": "agentrm_gym.rm.implicit",
    "train_implicit_rm": "agentrm_gym.rm.implicit",
    "JudgeRewardModel": "agentrm_gym.rm.judge",
    "PooledValueRewardModel": "agentrm_gym.rm.pooled",
    "PooledConfig": "agentrm_gym.rm.pooled",
    "train_pooled_rm": "agentrm_gym.rm.pooled",
    "RemoteRewardModel": "agentrm_gym.rm.remote",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agentrm_gym.rm' has no attribute {name!r}")
