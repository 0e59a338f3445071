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
from agentrm_gym.registry import (
    TASKS,
    TaskSpec,
    get_spec,
    make,
    register_envs,
    register_remote_env,
    register_task,
)

__version__ = "0.1.0"

ENV_IDS = register_envs()
#: The client env of an env server (``gym.make(REMOTE_ENV_ID, url=..., task=...)``); not a task, not in ENV_IDS.
REMOTE_ENV_ID = register_remote_env()

__all__ = [
    "CHECK_VALID_ACTIONS",
    "ENV_IDS",
    "TASKS",
    "MissingExtra",
    "TaskSpec",
    "Snapshot",
    "StepOutcome",
    "TextEnv",
    "UnknownTask",
    "check_task",
    "get_spec",
    "make",
    "make_reward_model",
    "register_envs",
    "register_task",
    "restore",
    "snapshot",
]


def __getattr__(name: str) -> object:
    # make_reward_model on first use: `import agentrm_gym` stays free of the reward-model modules
    if name == "make_reward_model":
        from agentrm_gym.rm.spec import make_reward_model

        return make_reward_model
    if name == "check_task":  # the contract checker imports nothing heavy, but is not needed to make envs
        from agentrm_gym.checker import check_task

        return check_task
    raise AttributeError(f"module 'agentrm_gym' has no attribute {name!r}")
