"""Jericho: interactive fiction on the Z-machine, with TextWorld-generated default games.

:class:`~agentrm_gym.envs.jericho.env.JerichoEnv` is the env (``agentrm/Jericho-v0``);
:mod:`agentrm_gym.envs.jericho.games` generates and caches its default games.
"""

from __future__ import annotations

from agentrm_gym.envs.jericho.env import JerichoEnv

__all__ = ["JerichoEnv"]
