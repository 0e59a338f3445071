"""ALFWorld on its own PDDL domain and grammar, with scenes generated from ALFRED's floor plans.

Modules: ``scenes`` (scene generator and splits), ``pddl_problem`` (PDDL problems and game files),
``games`` (the cache of game files), ``engine`` (the TextWorld PDDL runtime driver with native snapshots),
``subgoals`` (progress), ``oracle`` (expert), ``env`` (the Gymnasium env).
"""

from __future__ import annotations

from agentrm_gym.registry import require_extra

require_extra("ALFWorld")

from agentrm_gym.envs.alfworld.env import ALFWorldEnv  # noqa: E402

__all__ = ["ALFWorldEnv"]
