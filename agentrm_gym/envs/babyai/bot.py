"""The planner behind the BabyAI oracle: minigrid's ``BabyAIBot`` made to start mid-episode.

:class:`PlanningBot` skips the clauses of a mission that are already done, bounds the stock bot's
replanning (which can loop forever), can take a head start (drop what it carries, open a given door
first), puts down a key it no longer needs, and, as the omniscient variant, walks through closed
unlocked doors. The oracle (:mod:`~agentrm_gym.envs.babyai.oracle`) simulates it on a copy of the state.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from minigrid.envs.babyai.core.verifier import AfterInstr, AndInstr, BeforeInstr
from minigrid.utils.baby_ai_bot import BabyAIBot, DropSubgoal, GoNextToSubgoal, OpenSubgoal, PickupSubgoal

from agentrm_gym.envs.babyai.text import Cell


class PlanningBot(BabyAIBot):
    """BabyAIBot started mid-episode: skips finished clauses, bounds its replanning, can take a head start.

    Args:
        env: the minigrid env (its state is the one to plan from).
        vis_mask: the cells known so far (all True for an omniscient bot).
        head: subgoals pushed on top of the instruction's plan (e.g. open a given door first).
    """

    def __init__(self, env: Any, vis_mask: np.ndarray, head: tuple[str, Any] | None = None,
                 through_doors: bool = False):
        self.through_doors = through_doors
        super().__init__(env)
        self.vis_mask = vis_mask.copy()
        self.prev_agent_pos = env.agent_pos
        self.prev_carrying = env.carrying
        self.fwd_door_was_open = False
        self.prev_fwd_cell = None
        if head is not None and head[0] == "drop" and env.carrying is not None:
            drop_pos = self._find_drop_pos()
            if drop_pos is None:
                raise RuntimeError("no place to drop")
            self.stack.append(DropSubgoal(self))
            self.stack.append(GoNextToSubgoal(self, drop_pos))
        elif head is not None and head[0] == "open":
            self.stack.append(OpenSubgoal(self))
            self.stack.append(GoNextToSubgoal(self, head[1], reason="Open"))

    def _find_obj_pos(self, obj_desc: Any, adjacent: bool = False) -> Any:
        # the stock method asserts that every known object is reachable; behind a locked door it is not
        best_obj, best_pos, best_len = None, None, None
        for obj, pos in zip(obj_desc.obj_set, obj_desc.obj_poss, strict=False):
            if obj.type == "wall" or obj is self.mission.unwrapped.carrying or not self.vis_mask[pos]:
                continue
            path, _, blockers = self._shortest_path(lambda p, c, pos=pos: p == pos, try_with_blockers=True)
            if path is None:
                continue
            n = len(path) + ((7 if self.mission.unwrapped.carrying else 4) if blockers else 0)
            n = (3 if adjacent else 2) if n == 0 else (3 if adjacent and n == 1 else n)
            if best_len is None or n < best_len:
                best_obj, best_pos, best_len = obj, pos, n
        return best_obj, best_pos

    def _breadth_first_search(self, initial_states: Any, accept_fn: Any, ignore_blockers: bool) -> Any:
        if not self.through_doors:
            return super()._breadth_first_search(initial_states, accept_fn, ignore_blockers)
        # the omniscient planner walks through closed (unlocked) doors: it opens them on the way
        grid = self.mission.unwrapped.grid
        queue = deque((state, None) for state in initial_states)
        previous: dict[Cell, Any] = {}
        while queue:
            (i, j, di, dj), prev = queue.popleft()
            if (i, j) in previous:
                continue
            cell = grid.get(i, j)
            previous[(i, j)] = prev
            if accept_fn((i, j), cell):
                path, pos = [], (i, j)
                while pos:
                    path.append(pos)
                    pos = previous[pos]
                return path, (i, j), previous
            if cell is not None and (
                cell.type == "wall"
                or (cell.type == "door" and cell.is_locked)
                or (cell.type != "door" and not ignore_blockers)
            ):
                continue
            for k, m in ((di, dj), (dj, di), (-dj, -di), (-di, -dj)):
                queue.append(((i + k, j + m, k, m), (i, j)))
        return None, None, previous

    def _process_instr(self, instr: Any) -> None:
        # a clause of a sequence that is already done must not be planned again
        if isinstance(instr, BeforeInstr) and instr.a_done == "success":
            return self._process_instr(instr.instr_b)
        if isinstance(instr, AfterInstr) and instr.b_done == "success":
            return self._process_instr(instr.instr_a)
        if isinstance(instr, AndInstr):
            if instr.a_done == "success":
                return self._process_instr(instr.instr_b)
            if instr.b_done == "success":
                return self._process_instr(instr.instr_a)
        return super()._process_instr(instr)

    def replan(self, action_taken: Any = None) -> Any:
        self._process_obs()
        self._check_erroneous_box_opening(action_taken)
        for subgoal in self.stack:
            subgoal.update_agent_attributes()
        if self.stack:
            self.stack[-1].replan_after_action(action_taken)
        while self.stack and self.stack[-1].is_exploratory():
            self.stack.pop()
        suggested = None
        for _ in range(64):  # the stock bot can loop forever (e.g. UnlockToUnlock's key chain)
            if not self.stack:
                break
            top = self.stack[-1]
            if isinstance(top, PickupSubgoal) and self.mission.unwrapped.carrying is not None:
                # a bot started mid-episode may hold a key it no longer needs: put it down, come back
                drop_pos = self._find_drop_pos()
                if drop_pos is None:
                    raise RuntimeError("no place to drop")
                target = tuple(int(v) for v in top.fwd_pos)
                self.stack.append(GoNextToSubgoal(self, target))
                self.stack.append(DropSubgoal(self))
                self.stack.append(GoNextToSubgoal(self, drop_pos))
                continue
            suggested = top.replan_before_action()
            if suggested is not None:
                break
        else:
            raise RuntimeError("bot replanning does not converge")
        if not self.stack:
            suggested = self.mission.unwrapped.actions.done
        self._remember_current_state()
        return suggested
