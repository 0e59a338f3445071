"""PDDL: AgentBoard's planning games (blockworld, gripper, barman, tyreworld) on an own STRIPS engine.

Where things are: ``parser.py`` parses PDDL (via the ``pddl`` package) into lifted STRIPS;
``engine.py`` grounds it into a :class:`~agentrm_gym.envs.pddl.engine.Task`; ``planner.py`` holds the
A* oracle; ``generators.py`` the seeded problem generators; ``render.py`` the wording of facts and
actions; ``domains/`` the four domain files; ``env.py`` the Gymnasium env.
"""

from __future__ import annotations

from agentrm_gym.envs.pddl.engine import Task
from agentrm_gym.envs.pddl.env import PDDLEnv
from agentrm_gym.envs.pddl.parser import Domain, PDDLParseError, Problem, UnsupportedPDDL
from agentrm_gym.envs.pddl.planner import Oracle, optimal_plan

__all__ = ["Domain", "Oracle", "PDDLEnv", "PDDLParseError", "Problem", "Task", "UnsupportedPDDL", "optimal_plan"]
