"""BabyAI: minigrid's BabyAI levels behind AgentBoard's text rendering and macro actions.

Modules: ``levels`` (AgentBoard's level table, test levels and seeds, minigrid ids), ``verifier``
(fixes of minigrid's strict ordered-mission checks), ``text`` (the text view and object numbering),
``macros`` (admissible macro commands and their BFS plans), ``bot`` (minigrid's bot made to plan
mid-episode), ``oracle`` (the expert built on it), ``env`` (the Gymnasium env).
"""

from __future__ import annotations

try:  # minigrid is a core dependency; keep the import error readable if it is missing
    import minigrid  # noqa: F401  (registers the BabyAI ids)
except ImportError as err:  # pragma: no cover
    raise ImportError("BabyAI needs minigrid: pip install 'minigrid>=3.2'") from err

from agentrm_gym.envs.babyai.env import BabyAIEnv  # noqa: E402
from agentrm_gym.envs.babyai.levels import (  # noqa: E402
    ALL_LEVELS,
    TEST_LEVEL_IDS,
    TEST_SEEDS,
    TRAIN_SEED_BASE,
    minigrid_id,
)
from agentrm_gym.envs.babyai.macros import NOT_RECOGNIZED, PRIMITIVES  # noqa: E402

__all__ = [
    "ALL_LEVELS", "NOT_RECOGNIZED", "PRIMITIVES", "TEST_LEVEL_IDS", "TEST_SEEDS", "TRAIN_SEED_BASE",
    "BabyAIEnv", "minigrid_id",
]
