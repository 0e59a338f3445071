"""agentrm-gym: Gymnasium text environments, process reward models and RM-guided search.

Importing the package registers every ``agentrm/<Task>-v0`` id with Gymnasium::

    import gymnasium as gym
    import agentrm_gym  # noqa: F401

    env = gym.make("agentrm/Maze-v0")
"""

from __future__ import annotations

from agentrm_gym.core import (
    CHECK_VALID_ACTIONS,
    MissingExtra,
    Snapshot,
    StepOutcome,
    TextEnv,
    UnknownTask,
    restore,
    snapshot,
)
from agentrm_gym.registry import TASKS, get_spec, make, register_envs

__version__ = "0.1.0"

ENV_IDS = register_envs()

__all__ = [
    "CHECK_VALID_ACTIONS",
    "ENV_IDS",
    "TASKS",
    "MissingExtra",
    "Snapshot",
    "StepOutcome",
    "TextEnv",
    "UnknownTask",
    "get_spec",
    "make",
    "register_envs",
    "restore",
    "snapshot",
]
