"""BabyAI: minigrid's BabyAI levels behind AgentBoard's text rendering and macro actions."""

from __future__ import annotations

import contextlib
import copy
import io
import re
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

from agentrm_gym.core import StepOutcome, TextEnv, UnknownTask

try:  # minigrid is a core dependency; keep the import error readable if it is missing
    import minigrid  # noqa: F401  (registers the BabyAI ids)
    from minigrid.core.actions import Actions
    from minigrid.envs.babyai.core.verifier import AfterInstr, AndInstr, BeforeInstr, SeqInstr
    from minigrid.utils.baby_ai_bot import BabyAIBot, DropSubgoal, GoNextToSubgoal, OpenSubgoal, PickupSubgoal
except ImportError as err:  # pragma: no cover
    raise ImportError("BabyAI needs minigrid: pip install 'minigrid>=3.2'") from err

#: AgentBoard's ``all_levels`` numbering of the BabyAI levels it plays.
ALL_LEVELS: dict[int, str] = {
    1: "GoToRedBallGrey", 2: "GoToRedBall", 3: "GoToRedBallNoDists", 4: "GoToObjS6", 5: "GoToLocalS8N7",
    6: "GoToObjMazeS7", 7: "GoToImpUnlock", 8: "GoToSeqS5R2", 9: "GoToRedBlueBall", 10: "GoToDoor",
    11: "GoToObjDoor", 12: "Open", 13: "OpenRedDoor", 14: "OpenDoorLoc", 15: "OpenRedBlueDoorsDebug",
    16: "OpenDoorsOrderN4Debug", 17: "Pickup", 18: "UnblockPickup", 19: "PickupLoc", 20: "PickupDistDebug",
    21: "PickupAbove", 22: "PutNextLocalS6N4", 23: "PutNextS7N4Carrying", 24: "Unlock", 25: "UnlockLocalDist",
    26: "KeyInBox", 27: "UnlockPickupDist", 28: "BlockedUnlockPickup", 29: "UnlockToUnlock",
    30: "ActionObjDoor", 31: "FindObjS7", 32: "KeyCorridorS6R3", 33: "OneRoomS20", 34: "MoveTwoAcrossS8N9",
    35: "SynthS5R2", 36: "SynthLoc", 37: "SynthSeq", 38: "MiniBossLevel", 39: "BossLevel",
    40: "BossLevelNoUnlock",
}
#: The AgentBoard test levels (REFERENCE.md 3.4) and seeds: 28 x 4 = 112 episodes.
TEST_LEVEL_IDS = (*range(1, 22), 24, 25, 27, 28, 29, 31, 32)
TEST_SEEDS = (1234, 1235, 1236, 1237)
#: Train seeds start here, far from the test seeds.
TRAIN_SEED_BASE = 100_000

PRIMITIVES = {
    "turn left": Actions.left,
    "turn right": Actions.right,
    "move forward": Actions.forward,
    "pickup": Actions.pickup,
    "pick up": Actions.pickup,
    "drop": Actions.drop,
    "toggle": Actions.toggle,
}
PRIMITIVE_TEXT = {Actions.left: "turn left", Actions.right: "turn right", Actions.forward: "move forward",
                  Actions.pickup: "pickup", Actions.drop: "drop", Actions.toggle: "toggle"}
#: Minigrid direction index -> (dx, dy): right, down, left, up.
DIR_VEC = ((1, 0), (0, 1), (-1, 0), (0, -1))
PICKABLE = ("key", "ball", "box")
NOT_RECOGNIZED = "The action is not recognized. Please check valid actions."
MACRO_RE = re.compile(
    r"^(go to|pickup|pick up|go through|toggle and go through)\s+"
    r"(red|green|blue|purple|yellow|grey)\s+(?:(open|closed|locked)\s+)?(key|ball|box|door)\s+(\d+)$"
)

Cell = tuple[int, int]
Pose = tuple[int, int, int]


def minigrid_id(level: str) -> str:
    """The registered minigrid id of an AgentBoard level name (minigrid 3 bumped a few ids to ``-v1``)."""
    for version in ("v0", "v1"):
        env_id = f"BabyAI-{level}-{version}"
        if env_id in gym.registry:
            return env_id
    raise UnknownTask(f"BabyAI: minigrid has no level {level!r}")


def _relink_instrs(instr: Any, env: Any) -> None:
    """Point an instruction tree (restored from a snapshot) back at the live minigrid env."""
    instr.env = env
    if isinstance(instr, SeqInstr):
        _relink_instrs(instr.instr_a, env)
        _relink_instrs(instr.instr_b, env)


def _verify_in_order(instr: Any, action: Any, first: str, second: str) -> str:
    """Judge ``instr_<first>`` until it succeeds, then ``instr_<second>`` from the next action on.

    Under ``strict``, completing ``second`` while ``first`` is pending fails the mission; the action that
    completes ``first`` is not judged against ``second`` (see :func:`_fix_strict_sequences`).
    """
    if getattr(instr, f"{first}_done") != "success":
        status = getattr(instr, f"instr_{first}").verify(action)
        setattr(instr, f"{first}_done", status)
        if status == "failure":
            return "failure"
        if status == "success":
            return "continue"
        if instr.strict and getattr(instr, f"instr_{second}").verify(action) == "success":
            return "failure"
        return "continue"
    status = getattr(instr, f"instr_{second}").verify(action)
    setattr(instr, f"{second}_done", status)
    return status if status in ("success", "failure") else "continue"


class _StrictBeforeInstr(BeforeInstr):
    """``a, then b`` without judging b on the action that completed a (see :func:`_fix_strict_sequences`)."""

    def verify(self, action: Any) -> str:
        return _verify_in_order(self, action, "a", "b")


class _StrictAfterInstr(AfterInstr):
    """``a after you b`` without judging a on the action that completed b (see :func:`_fix_strict_sequences`)."""

    def verify(self, action: Any) -> str:
        return _verify_in_order(self, action, "b", "a")


def _fix_strict_sequences(instr: Any) -> None:
    """Work around a minigrid 3.2 verifier bug that makes strict door-order missions unsolvable.

    ``BeforeInstr``/``AfterInstr`` re-verify the second clause with the very action that completed the
    first one; with strict ``OpenInstr`` clauses (OpenDoorsOrderN4Debug) the toggle that opened the first
    door is then judged as opening the *wrong* door for the second clause, and the episode fails. Only
    sequences whose second clause is strict get the corrected class.
    """
    if isinstance(instr, SeqInstr):
        second = instr.instr_b if isinstance(instr, BeforeInstr) else instr.instr_a
        if getattr(second, "strict", False):
            if type(instr) is BeforeInstr:
                instr.__class__ = _StrictBeforeInstr
            elif type(instr) is AfterInstr:
                instr.__class__ = _StrictAfterInstr
        _fix_strict_sequences(instr.instr_a)
        _fix_strict_sequences(instr.instr_b)


def _leaf_instrs(instr: Any) -> list[Any]:
    if isinstance(instr, SeqInstr):
        return _leaf_instrs(instr.instr_a) + _leaf_instrs(instr.instr_b)
    return [instr]


class _PlanningBot(BabyAIBot):
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


class BabyAIEnv(TextEnv):
    """You are placed in a room and you need to accomplish the given goal with actions.

    ## Description
    The BabyAI levels of minigrid (``BabyAI-<Level>-v0``) as AgentBoard presents them: the agent's 7x7
    egocentric view becomes text and the agent acts with macro actions planned by BFS. The test split is
    AgentBoard's 28 test levels (ids 1-21, 24, 25, 27-29, 31, 32 of its ``all_levels`` list) x seeds
    1234-1237 = 112 episodes; the train split is the same levels with seeds from 100000 on. Task ids look
    like ``"BabyAI-GoToRedBallGrey-v0@1234"``. The goal is the level's mission, verbatim.

    ## Action Space
    ``turn left``, ``turn right``, ``move forward``, ``go to <obj> <n>``, ``pickup <obj> <n>`` (also
    ``pick up ...``), ``go through <door> <n>`` (an open door), ``toggle and go through <door> <n>`` (a
    closed door, or a locked one with its key), ``toggle``, ``drop``, the primitive ``pickup``, and
    ``inventory``. Objects are named by colour and type (doors also by state: ``red locked door 1``); the
    number is given at first sight and stays the same for the whole episode. Macros walk a shortest path
    through the cells seen so far. A failing macro changes nothing, says why ("You cannot pickup red ball
    1, as there is no path leading to it.") and has ``action_valid`` False.

    ## Observation Space
    "In front of you in this room, you can see several objects: There is a grey key 1 right in front of you
    2 steps away. There is a red ball 1 3 steps in front of you and 1 steps to your left. The room has
    walls around you. You are facing a wall 4 steps away. You are not carrying anything."

    ## Rewards
    The increase of the progress rate. Subgoals come from the mission's clauses: for each clause, an
    object it names was seen; the agent faced one (reached it); for pickup clauses it carries one; for
    put-next clauses it carries the object to move and has seen the fixed one; and the clause is done.
    Progress is the fraction of those subgoals reached (never decreasing); success sets it to 1.

    ## Starting State / Episode End
    Reset generates the level with the task's seed. Terminates when minigrid's verifier reports success
    (or failure, e.g. opening the wrong door in a strict level); truncated by ``max_episode_steps`` (30).

    ## Arguments
    ``split`` ("train" or "test"), ``num_train_seeds`` (train seeds per level, default 40).

    ## Version History
    v0: initial version (minigrid 3.2 levels; GoToObjS6 is minigrid's ``-v1``). Strict "open X after you
    open Y" missions get a fix of minigrid's sequence verifier, which otherwise fails them on the toggle
    that completes the first clause (see ``_fix_strict_sequences``).
    """

    task_name = "BabyAI"
    invalid_action_message = NOT_RECOGNIZED
    command_vocabulary = ("turn left", "turn right", "move forward", "toggle", "drop")

    def __init__(self, split: str = "train", render_mode: str | None = None, num_train_seeds: int = 40):
        super().__init__(split=split, render_mode=render_mode)
        if num_train_seeds < 1:
            raise ValueError(f"num_train_seeds must be >= 1, got {num_train_seeds}")
        self.num_train_seeds = num_train_seeds
        self._levels: dict[str, Any] = {}
        self.env: Any = None
        self._seen = np.zeros((1, 1), dtype=bool)
        self._label_counts: dict[str, int] = {}
        self._achieved: set[str] = set()
        self._won = False
        self._lost = False
        self._cache: dict[str, Any] | None = None
        self._plan_cache: dict[Any, list[str]] = {}
        self._depths: dict[Pose, int] = {}

    # -------------------------------------------------------------- tasks
    def task_ids(self, split: str = "test") -> list[str]:
        if split == "test":
            return [f"BabyAI-{ALL_LEVELS[i]}-v0@{s}" for i in TEST_LEVEL_IDS for s in TEST_SEEDS]
        if split == "train":
            return [
                f"BabyAI-{ALL_LEVELS[i]}-v0@{TRAIN_SEED_BASE + k}"
                for k in range(self.num_train_seeds)
                for i in TEST_LEVEL_IDS
            ]
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")

    @staticmethod
    def parse_task_id(task_id: str) -> tuple[str, int]:
        """``"BabyAI-GoToRedBall-v0@1234"`` -> ``("GoToRedBall", 1234)``."""
        m = re.fullmatch(r"BabyAI-(\w+)-v\d@(\d+)", task_id)
        if m is None or m.group(1) not in ALL_LEVELS.values():
            raise UnknownTask(
                f"BabyAI: {task_id!r}; ids look like 'BabyAI-GoToRedBallGrey-v0@1234' with a level of "
                f"AgentBoard's list ({', '.join(ALL_LEVELS.values())})"
            )
        return m.group(1), int(m.group(2))

    def _level_env(self, level: str) -> Any:
        if level not in self._levels:
            self._levels[level] = gym.make(minigrid_id(level), disable_env_checker=True).unwrapped
        return self._levels[level]

    def _load_task(self, task_id: str) -> tuple[str, str]:
        level, seed = self.parse_task_id(task_id)
        self.env = self._level_env(level)
        with contextlib.redirect_stdout(io.StringIO()):  # "Sampling rejected: unreachable object"
            self.env.reset(seed=seed)
        _fix_strict_sequences(self.env.instrs)
        self._seen = np.zeros((self.env.width, self.env.height), dtype=bool)
        self._label_counts = {}
        self._achieved = set()
        self._won = self._lost = False
        self._plan_cache = {}
        self._invalidate()
        self._update_subgoals()
        return self.env.mission, self._describe()

    # -------------------------------------------------------------- perception
    def _invalidate(self) -> None:
        self._cache = None

    def _view(self) -> dict[str, Any]:
        """What the agent sees now: visible objects (labelled), the BFS map, and the admissible macros."""
        if self._cache is not None:
            return self._cache
        env = self.env
        _, vis = env.gen_obs_grid()
        size = env.agent_view_size
        ax, ay = int(env.agent_pos[0]), int(env.agent_pos[1])
        fx, fy = DIR_VEC[env.agent_dir]
        rx, ry = -fy, fx
        top_x = ax + fx * (size - 1) - rx * (size // 2)
        top_y = ay + fy * (size - 1) - ry * (size // 2)
        visible: list[tuple[int, int, int, Any]] = []
        for j in range(size):
            for i in range(size):
                if not vis[i, j]:
                    continue
                x, y = top_x - fx * j + rx * i, top_y - fy * j + ry * i
                if not (0 <= x < env.width and 0 <= y < env.height):
                    continue
                self._seen[x, y] = True
                cell = env.grid.get(x, y)
                if cell is not None and cell.type != "wall" and (x, y) != (ax, ay):
                    visible.append((abs(x - ax) + abs(y - ay), x, y, cell))
        visible.sort(key=lambda t: (t[0], t[1], t[2]))
        for _, _, _, obj in visible:  # numbers are given at first sight and kept all episode
            if getattr(obj, "agentrm_label", None) is None:
                base = f"{obj.color} {obj.type}"
                self._label_counts[base] = self._label_counts.get(base, 0) + 1
                obj.agentrm_label = self._label_counts[base]
        objects = [(d, (x, y), obj) for d, x, y, obj in visible]
        self._cache = {"objects": objects}
        return self._cache

    def _macro_table(self) -> dict[str, list[int]]:
        """The admissible commands of the current state -> primitives (BFS computed once per state)."""
        view = self._view()
        if "actions" not in view:
            view["bfs"] = self._bfs()
            view["actions"] = self._macros()
        return view["actions"]

    @staticmethod
    def obj_name(obj: Any) -> str:
        """``red ball``, ``blue locked door``, ..."""
        if obj.type == "door":
            state = "locked" if obj.is_locked else ("open" if obj.is_open else "closed")
            return f"{obj.color} {state} door"
        return f"{obj.color} {obj.type}"

    def _describe(self) -> str:
        env = self.env
        view = self._view()
        ax, ay = int(env.agent_pos[0]), int(env.agent_pos[1])
        fx, fy = DIR_VEC[env.agent_dir]
        rx, ry = -fy, fx
        parts = []
        for _, (x, y), obj in view["objects"]:
            front = (x - ax) * fx + (y - ay) * fy
            right = (x - ax) * rx + (y - ay) * ry
            if right == 0:
                where = f"right in front of you {front} steps away"
            elif front == 0:
                where = f"{abs(right)} steps to your {'right' if right > 0 else 'left'}"
            else:
                where = f"{front} steps in front of you and {abs(right)} steps to your {'right' if right > 0 else 'left'}"
            parts.append(f"There is a {self.obj_name(obj)} {obj.agentrm_label} {where}.")
        if parts:
            text = "In front of you in this room, you can see several objects: " + " ".join(parts)
        else:
            text = "You cannot see any objects within sight."
        text += " The room has walls around you."
        for k in range(1, env.agent_view_size):
            x, y = ax + fx * k, ay + fy * k
            if not (0 <= x < env.width and 0 <= y < env.height):
                break
            cell = env.grid.get(x, y)
            if cell is not None and not cell.can_overlap():
                thing = "wall" if cell.type == "wall" else self.obj_name(cell)
                text += f" You are facing a {thing} {k} steps away."
                break
        text += " " + self._carrying_text()
        return text

    def _carrying_text(self) -> str:
        carrying = self.env.carrying
        if carrying is None:
            return "You are not carrying anything."
        return f"You are carrying a {carrying.color} {carrying.type}."

    # -------------------------------------------------------------- planning
    def _passable(self, x: int, y: int) -> bool:
        if not (0 <= x < self.env.width and 0 <= y < self.env.height) or not self._seen[x, y]:
            return False
        cell = self.env.grid.get(x, y)
        return cell is None or cell.can_overlap()

    def _bfs(self) -> dict[Pose, tuple[Pose, int] | None]:
        """Shortest primitive paths from the agent's pose to every pose over the cells seen so far."""
        env = self.env
        start = (int(env.agent_pos[0]), int(env.agent_pos[1]), int(env.agent_dir))
        parent: dict[Pose, tuple[Pose, int] | None] = {start: None}
        depth = {start: 0}
        queue = deque([start])
        while queue:
            pose = queue.popleft()
            x, y, d = pose
            dx, dy = DIR_VEC[d]
            for action, nxt in (
                (Actions.forward, (x + dx, y + dy, d)),
                (Actions.left, (x, y, (d - 1) % 4)),
                (Actions.right, (x, y, (d + 1) % 4)),
            ):
                if nxt in parent:
                    continue
                if action == Actions.forward and not self._passable(nxt[0], nxt[1]):
                    continue
                parent[nxt] = (pose, int(action))
                depth[nxt] = depth[pose] + 1
                queue.append(nxt)
        self._depths = depth
        return parent

    def _path(self, target: Cell, arrive: bool) -> list[int] | None:
        """Primitives that reach ``target`` (``arrive``) or face it; ``None`` when there is no path."""
        parent = self._cache["bfs"]  # type: ignore[index]
        best: Pose | None = None
        best_len = None
        for pose in parent:
            x, y, d = pose
            if arrive:
                ok = (x, y) == target
            else:
                ok = (x + DIR_VEC[d][0], y + DIR_VEC[d][1]) == target
            if ok:
                n = self._depths[pose]
                if best_len is None or n < best_len or (n == best_len and pose < best):
                    best, best_len = pose, n
        if best is None:
            return None
        path = []
        node = parent[best]
        while node is not None:
            prev, action = node
            path.append(action)
            node = parent[prev]
        return path[::-1]

    def _macros(self) -> dict[str, list[int]]:
        """Admissible commands of the current state -> their primitive actions."""
        env = self.env
        carrying = env.carrying
        front = env.grid.get(*env.front_pos)
        acts: dict[str, list[int]] = {"turn left": [Actions.left], "turn right": [Actions.right]}
        if front is None or front.can_overlap():
            acts["move forward"] = [Actions.forward]
        if front is not None and front.type in ("door", "box"):
            acts["toggle"] = [Actions.toggle]
        if carrying is not None and front is None:
            acts["drop"] = [Actions.drop]
        for _, pos, obj in self._cache["objects"]:  # type: ignore[index]
            label = f"{self.obj_name(obj)} {obj.agentrm_label}"
            face = self._path(pos, arrive=False)
            if face is None:
                continue
            acts[f"go to {label}"] = face
            if obj.type in PICKABLE and carrying is None:
                acts[f"pickup {label}"] = [*face, Actions.pickup]
            if obj.type == "door":
                if obj.is_open:
                    through = self._path(pos, arrive=True)
                    if through is not None:
                        acts[f"go through {label}"] = through
                elif not obj.is_locked or (
                    carrying is not None and carrying.type == "key" and carrying.color == obj.color
                ):
                    acts[f"toggle and go through {label}"] = [*face, Actions.toggle, Actions.forward]
        return acts

    def admissible_actions(self) -> list[str]:
        return list(self._macro_table())

    # -------------------------------------------------------------- dynamics
    def _find_object(self, color: str, kind: str, number: int) -> Any:
        for _, _pos, obj in self._view()["objects"]:
            if obj.color == color and obj.type == kind and obj.agentrm_label == number:
                return obj
        return None

    def _explain_failure(self, command: str) -> str:
        """The AgentBoard-style reason a command cannot run in this state."""
        env = self.env
        carrying = env.carrying
        if command == "move forward":
            return "There is a barrier in front of you, you can't move forward."
        if command == "drop":
            if carrying is None:
                return "You cannot drop the object, as you are not carrying anything."
            return "You cannot drop the object, as there is already an object in front of you."
        if command == "toggle":
            return "You cannot toggle, as there is no door or box in front of you."
        if command in ("pickup", "pick up"):
            front = env.grid.get(*env.front_pos)
            if carrying is not None:
                return "You cannot pick up, as you are already carrying something."
            return "You cannot pick up, as there is nothing to pick up in front of you." if (
                front is None or not front.can_pickup()) else NOT_RECOGNIZED
        m = MACRO_RE.match(command)
        if m is None:
            return NOT_RECOGNIZED
        verb, color, _state, kind, number = m.groups()
        verb = "pickup" if verb == "pick up" else verb
        obj = self._find_object(color, kind, int(number))
        name = f"{color} {kind} {number}"
        if obj is None:
            return f"You cannot {verb} {name}, as you cannot see it."
        name = f"{self.obj_name(obj)} {number}"
        if verb == "pickup":
            if kind == "door":
                return f"You cannot pickup {name}, as doors cannot be picked up."
            if carrying is not None:
                return f"You cannot pickup {name}, as you are already carrying a {carrying.color} {carrying.type}."
        if verb in ("go through", "toggle and go through") and kind != "door":
            return f"You cannot {verb} {name}, as it is not a door."
        if verb == "go through" and not obj.is_open:
            return f"You cannot go through {name}, as it is closed. You should toggle it first."
        if verb == "toggle and go through":
            if obj.is_open:
                return f"You cannot toggle and go through {name}, as it is already open. You can go through it."
            if obj.is_locked and (carrying is None or carrying.type != "key"):
                return f"You cannot toggle and go through {name}, as you are not carrying a key."
            if obj.is_locked and carrying.color != obj.color:
                return (f"You cannot toggle and go through {name}, as the color of the key you are carrying "
                        "does not match the color of door.")
        return f"You cannot {verb} {name}, as there is no path leading to it."

    def _canonical(self, command: str) -> str:
        text = " ".join(command.lower().rstrip(".").split())
        if text.startswith("pick up "):
            text = "pickup " + text[len("pick up "):]
        m = MACRO_RE.match(text)
        if m is not None:  # accept a door named with or without (or with a stale) state word
            verb, color, _state, kind, number = m.groups()
            obj = self._find_object(color, kind, int(number))
            if obj is not None:
                return f"{'pickup' if verb == 'pick up' else verb} {self.obj_name(obj)} {number}"
        return text

    def _step(self, action: str) -> StepOutcome:
        command = self._canonical(action)
        if command in ("inventory", "check available actions"):
            if command == "inventory":
                return StepOutcome(self._carrying_text())
            return StepOutcome(self._valid_actions_text())
        macros = self._macro_table()
        if command in macros:
            primitives = macros[command]
        elif command in ("pickup", "pick up"):
            front = self.env.grid.get(*self.env.front_pos)
            if self.env.carrying is not None or front is None or not front.can_pickup():
                return StepOutcome(self._explain_failure(command), valid=False)
            primitives = [Actions.pickup]
        else:
            return StepOutcome(self._explain_failure(command), valid=False)
        self._execute(primitives)
        obs = self._describe()
        if self._won:
            obs += " The task is completed."
        elif self._lost:
            obs += " The task failed: that action breaks the mission's order."
        return StepOutcome(obs, valid=True, terminal=self._lost)

    def _execute(self, primitives: list[int]) -> None:
        for a in primitives:
            _, reward, terminated, _, _ = self.env.step(a)
            self._invalidate()
            self._view()
            self._update_subgoals()
            if terminated:
                self._won = reward > 0
                self._lost = not self._won
                break

    # -------------------------------------------------------------- progress
    def _subgoal_checks(self) -> list[tuple[str, bool]]:
        env = self.env
        front = env.grid.get(*env.front_pos)
        visible = {id(obj) for _, _, obj in self._view()["objects"]}
        carried = env.carrying
        checks = []

        def status(leaf: Any) -> bool:
            return self._leaf_done(env.instrs, leaf)

        for k, leaf in enumerate(_leaf_instrs(env.instrs)):
            descs = [getattr(leaf, a) for a in ("desc", "desc_move", "desc_fixed") if hasattr(leaf, a)]
            objs = [o for d in descs[:1] for o in d.obj_set]
            checks.append((f"{k}:seen", any(id(o) in visible or o is carried for o in objs)))
            checks.append((f"{k}:reached", any(front is o for o in objs) or any(o is carried for o in objs)))
            if hasattr(leaf, "desc_move"):
                fixed = leaf.desc_fixed.obj_set
                checks.append((f"{k}:picked", any(o is carried for o in objs)))
                checks.append((f"{k}:seen_fixed", any(id(o) in visible for o in fixed)))
            elif type(leaf).__name__ == "PickupInstr":
                checks.append((f"{k}:picked", any(o is carried for o in objs)))
            checks.append((f"{k}:done", status(leaf)))
        return checks

    def _leaf_done(self, root: Any, leaf: Any) -> bool:
        if root is leaf:
            return self._won
        if isinstance(root, SeqInstr):
            if root.instr_a is leaf:
                return root.a_done == "success" or self._won
            if root.instr_b is leaf:
                return root.b_done == "success" or self._won
            return self._leaf_done(root.instr_a, leaf) or self._leaf_done(root.instr_b, leaf)
        return False

    def _update_subgoals(self) -> None:
        for key, ok in self._subgoal_checks():
            if ok:
                self._achieved.add(key)

    def _progress(self) -> float:
        total = len(self._subgoal_checks())
        return len(self._achieved) / total if total else 0.0

    def _success(self) -> bool:
        return self._won

    # -------------------------------------------------------------- snapshots
    def _get_state(self) -> Any:
        env = self.env
        memo: dict[int, Any] = {id(env): None}
        for cell in env.grid.grid:  # walls never change: share them instead of copying
            if cell is not None and cell.type == "wall":
                memo[id(cell)] = cell
        fields = (env.grid, env.carrying, env.instrs)
        grid, carrying, instrs = copy.deepcopy(fields, memo)
        return {
            "grid": grid, "carrying": carrying, "instrs": instrs,
            "agent_pos": tuple(int(v) for v in env.agent_pos), "agent_dir": int(env.agent_dir),
            "step_count": int(env.step_count), "seen": self._seen.copy(),
            "labels": dict(self._label_counts), "achieved": set(self._achieved),
            "won": self._won, "lost": self._lost,
        }

    def _set_state(self, state: Any) -> None:
        env = self.env
        env.grid = state["grid"]
        env.carrying = state["carrying"]
        env.instrs = state["instrs"]
        _relink_instrs(env.instrs, env)
        env.agent_pos = tuple(state["agent_pos"])
        env.agent_dir = state["agent_dir"]
        env.step_count = state["step_count"]
        self._seen = state["seen"].copy()
        self._label_counts = dict(state["labels"])
        self._achieved = set(state["achieved"])
        self._won, self._lost = state["won"], state["lost"]
        self._invalidate()

    # -------------------------------------------------------------- oracle
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
            bot = _PlanningBot(env, vis, head, through_doors)
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

    def _label(self, obj: Any) -> str | None:
        if obj is None or getattr(obj, "agentrm_label", None) is None:
            return None
        return f"{self.obj_name(obj)} {obj.agentrm_label}"

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

    def instruction(self) -> str:
        return (
            "You are placed in a room and you need to accomplish the given goal with actions.\n"
            "You can use the following actions:\n"
            "- turn right\n- turn left\n- move forward\n"
            "- go to <obj> <id>: <obj> is a visible object or door, e.g. go to red ball 1\n"
            "- pickup <obj> <id>: e.g. pickup yellow key 1\n"
            "- go through <door> <id>: <door> must be an open door, e.g. go through green open door 1\n"
            "- toggle and go through <door> <id>: <door> can be a closed door or a locked door you have the "
            "key for, e.g. toggle and go through blue closed door 1\n"
            "- toggle: toggle (open, close or unlock) the door or box right in front of you\n"
            "- drop: drop what you carry in front of you\n"
            "- check available actions: list the actions you can take now"
        )
