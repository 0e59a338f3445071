"""The BabyAI oracle: the next admissible command of the shortest plan a simulated bot finds.

:class:`BabyAIOracle` is a mixin of :class:`~agentrm_gym.envs.babyai.env.BabyAIEnv`. From a snapshot
of the current state it simulates :class:`~agentrm_gym.envs.babyai.bot.PlanningBot` variants (the
stock bot, an omniscient one, head starts), keeps the shortest successful primitive plan, and
compresses its next stretch into one macro where a macro covers it (else a primitive). A plan whose
next step is a single primitive is kept for the next call, so the expert does not dither.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from minigrid.core.actions import Actions

from agentrm_gym.envs.babyai.bot import PlanningBot
from agentrm_gym.envs.babyai.macros import PRIMITIVE_TEXT
from agentrm_gym.envs.babyai.text import DIR_VEC, Cell


class BabyAIOracle:
    """The expert half of the BabyAI env (a mixin; it snapshots and restores the env it plans in)."""

    env: Any
    _seen: np.ndarray

    def _bot_plan(self) -> tuple[list[int], list[Any]] | None:
        """Simulate BabyAIBot variants from the current state; the shortest successful primitive plan.

        Returns the primitives and, for each, the cell in front before it (what it acts on).
        """
        env = self.env
        saved = self._get_state()
        heads: list[tuple[str, Any] | None] = [None, ("drop", None)]
        locked = [c for c in env.grid.grid if c is not None and c.type == "door" and not c.is_open]
        heads += [("open", door) for door in locked]
        # the stock bot (what it has seen) and an omniscient one; other head starts only when both fail
        variants = [(False, None), (True, None)]
        variants += [(omni, head) for head in heads[1:] for omni in (False, True)]
        best: tuple[list[int], list[Any]] | None = None
        seen = self._seen.copy()
        try:
            for k, (omniscient, head) in enumerate(variants):
                if best is not None and k >= 2:
                    break
                self._set_state(copy.deepcopy(saved))
                vis = np.ones_like(seen) if omniscient else seen
                plan = self._simulate(vis, head, limit=len(best[0]) if best else 300, through_doors=omniscient)
                if plan is not None and (best is None or len(plan[0]) < len(best[0])):
                    best = plan
        finally:
            self._set_state(saved)
        return best

    def _simulate(self, vis: np.ndarray, head: tuple[str, Any] | None, limit: int, through_doors: bool = False):
        env = self.env
        if head is not None and head[0] == "open":
            # the door must be the same object in the restored copy: find it by position
            pos = head[1].cur_pos
            head = ("open", env.grid.get(*pos)) if pos is not None else None
            if head is None or head[1] is None:
                return None
        try:
            bot = PlanningBot(env, vis, head, through_doors)
            prims, fronts = [], []
            action = None
            for _ in range(limit):
                action = bot.replan(action)
                if action == env.actions.done:
                    return None
                fronts.append(tuple(int(v) for v in env.front_pos))
                prims.append(int(action))
                _, reward, terminated, _, _ = env.step(action)
                if terminated:
                    return (prims, fronts) if reward > 0 else None
        except Exception:  # the bot asserts or gives up on some layouts; another variant may work
            return None
        return None

    def expert_action(self) -> str | None:
        if self.env is None or self._won or self._lost:
            return None
        key = (self._task_id, tuple(self._actions))
        cached = self._plan_cache.get(key)
        if cached is not None:  # keep following the plan that the last walking step was part of
            prims, fronts = cached
        else:
            plan = self._bot_plan()
            if plan is None:
                return None
            prims, fronts = plan
        action = self._compress(prims, fronts)
        self._plan_cache = {}
        single = action == PRIMITIVE_TEXT[Actions(prims[0])] or (
            prims[0] == Actions.pickup and action.startswith("pickup ") and fronts[0] == self._front_cell()
        )
        if single and len(prims) > 1:
            # the action is the plan's next primitive: keep the plan, since a fresh bot at every step
            # would dither (turning towards and away from a drop spot, re-fetching a key it just put down)
            self._plan_cache[(self._task_id, (*self._actions, action))] = (prims[1:], fronts[1:])
        return action

    def _front_cell(self) -> Cell:
        return (int(self.env.front_pos[0]), int(self.env.front_pos[1]))

    def _compress(self, prims: list[int], fronts: list[Any]) -> str:
        """Express the bot's next stretch of primitives as one admissible macro where possible."""
        macros = self._macro_table()
        visible = {id(o) for _, _, o in self._view()["objects"]}
        # the first interaction of the plan (or the end, where a go-to mission is reached)
        t = next((i for i, a in enumerate(prims) if a in (Actions.pickup, Actions.drop, Actions.toggle)),
                 len(prims))
        if t == len(prims):
            target = self._final_front(prims)
            label = self._label(target) if target is not None and id(target) in visible else None
            if label and f"go to {label}" in macros:
                return f"go to {label}"
        else:
            # the plan ran on a copy: the object acted on is the one at that cell in the live grid
            obj = self.env.grid.get(*fronts[t])
            label = self._label(obj) if obj is not None and id(obj) in visible else None
            if prims[t] == Actions.pickup:
                if t == 0:
                    return f"pickup {label}" if label and f"pickup {label}" in macros else "pickup"
                if label and f"pickup {label}" in macros:
                    return f"pickup {label}"
            elif prims[t] == Actions.toggle:
                if t == 0:
                    return "toggle"
                if label and f"toggle and go through {label}" in macros:
                    return f"toggle and go through {label}"
            elif t == 0:
                return "drop"
        # no macro covers the stretch: walk through the farthest visible open door on the way, if any
        pos = [tuple(int(v) for v in self.env.agent_pos)]
        x, y, d = pos[0][0], pos[0][1], int(self.env.agent_dir)
        for a in prims[:t]:
            if a == Actions.left:
                d = (d - 1) % 4
            elif a == Actions.right:
                d = (d + 1) % 4
            elif a == Actions.forward:
                x, y = x + DIR_VEC[d][0], y + DIR_VEC[d][1]
            pos.append((x, y))
        # a movement macro whose end cell lies farthest along the bot's walk stands for the walk up to there
        index: dict[Cell, int] = {}
        for k, cell in enumerate(pos):
            index.setdefault(cell, k)
        best, best_k = None, 1
        for name, path in macros.items():
            if not (name.startswith("go to ") or name.startswith("go through ")) or not path:
                continue
            end = self._end_cell(path)
            k = -1 if end == pos[0] else index.get(end, -1)
            if k > best_k or (k == best_k and best is not None and name < best):
                best, best_k = name, k
        if best is not None and best_k > 1:
            return best
        return PRIMITIVE_TEXT[Actions(prims[0])]

    def _pose_after(self, prims: list[int]) -> tuple[int, int, int]:
        """The agent's (x, y, direction) after ``prims`` (turns and forward moves; others leave it)."""
        x, y, d = int(self.env.agent_pos[0]), int(self.env.agent_pos[1]), int(self.env.agent_dir)
        for a in prims:
            if a == Actions.left:
                d = (d - 1) % 4
            elif a == Actions.right:
                d = (d + 1) % 4
            elif a == Actions.forward:
                x, y = x + DIR_VEC[d][0], y + DIR_VEC[d][1]
        return x, y, d

    def _end_cell(self, prims: list[int]) -> Cell:
        x, y, _ = self._pose_after(prims)
        return (x, y)

    def _final_front(self, prims: list[int]) -> Any:
        x, y, d = self._pose_after(prims)
        return self.env.grid.get(x + DIR_VEC[d][0], y + DIR_VEC[d][1])
