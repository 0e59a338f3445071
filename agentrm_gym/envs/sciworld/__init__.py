"""ScienceWorld: the ``scienceworld`` simulator (a Scala jar driven over py4j) with AgentBoard's settings.

Modules: ``jvm`` (one simulator JVM per env, with a timeout on every call and deterministic options),
``tasks`` (the variation table, the 90 test episodes and the simplifications), ``text`` (command
normalization, ambiguity answers, canonical observations), ``gold`` (gold paths, their disk cache and
the expert), ``env`` (the Gymnasium env). Importing this package needs neither ``scienceworld`` nor
Java: the env checks for both when it is made.
"""

from __future__ import annotations

from agentrm_gym.envs.sciworld.env import ScienceWorldEnv
from agentrm_gym.envs.sciworld.gold import GOLD_CACHE_VERSION, GOLD_MAX_STEPS, generate_gold_path
from agentrm_gym.envs.sciworld.jvm import JVM_OPTIONS, ScienceWorldSimulator, SimulatorDied, SimulatorTimeout
from agentrm_gym.envs.sciworld.tasks import (
    SIMPLIFICATIONS,
    TASK_VARIATIONS,
    TEST_EPISODES,
    simplifications_for,
)
from agentrm_gym.envs.sciworld.text import NO_MATCH, canonical_observation, normalize_command, send_command

__all__ = [
    "GOLD_CACHE_VERSION", "GOLD_MAX_STEPS", "JVM_OPTIONS", "NO_MATCH", "SIMPLIFICATIONS", "TASK_VARIATIONS",
    "TEST_EPISODES", "ScienceWorldEnv", "ScienceWorldSimulator", "SimulatorDied", "SimulatorTimeout",
    "canonical_observation", "generate_gold_path", "normalize_command", "send_command", "simplifications_for",
]
