"""The BabyAI env: minigrid's BabyAI levels behind AgentBoard's text rendering and macro actions.

:class:`BabyAIEnv` holds the task splits, level loading, stepping, subgoal progress and native
snapshots. The pieces it is built from live beside it: the level table (``levels``), minigrid verifier
fixes (``verifier``), the text view (``text``), macro actions (``macros``) and the oracle (``oracle``,
planning with ``bot``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
from typing import Any

import gymnasium as gym
import numpy as np
from minigrid.core.actions import Actions
from minigrid.envs.babyai.core.verifier import SeqInstr

from agentrm_gym.core import StepOutcome, TextEnv, UnknownTask
from agentrm_gym.envs.babyai.levels import (
    ALL_LEVELS,
    TEST_LEVEL_IDS,
    TEST_SEEDS,
    TRAIN_SEED_BASE,
    minigrid_id,
)
from agentrm_gym.envs.babyai.macros import NOT_RECOGNIZED, BabyAIMacros
from agentrm_gym.envs.babyai.oracle import BabyAIOracle
from agentrm_gym.envs.babyai.text import BabyAIText
from agentrm_gym.envs.babyai.verifier import fix_strict_sequences, leaf_instrs, relink_instrs
from agentrm_gym.perturbation import Perturbation, word_renames

#: ``perturbation >= 1``: every macro and primitive renamed; the words of the failure messages with them.
_VERBS = {"toggle and go through": "open and pass through", "go through": "pass through", "go to": "walk to",
          "pickup": "grab", "pick up": "grab", "turn left": "rotate left", "turn right": "rotate right",
          "move forward": "step forward", "toggle": "switch", "drop": "release"}
PERTURBATION = Perturbation(
    [("toggle and go through {door}", "open and pass through {door}"), ("go through {door}", "pass through {door}"),
     ("go to {obj}", "walk to {obj}"), ("pickup {obj}", "grab {obj}"), ("pickup", "grab"),
     ("turn left", "rotate left"), ("turn right", "rotate right"), ("move forward", "step forward"),
     ("toggle", "switch"), ("drop", "release")],
    retired=["pick up {obj}", "pick up"],
    observation_phrases=word_renames(_VERBS), instruction_phrases=word_renames(_VERBS),
    goal_rules=[(r"\bgo to\b", "make your way to"), (r"\bpick up\b", "collect"),
                (r"\bput (.+?) next to\b", r"place \1 beside"), (r"\bopen (the|a) ((?:\w+ )?door)\b", r"get \1 \2 open"),
                (r", then ", ", and after that "), (r" after you ", ", but only after you ")],
    goal_frame="Your mission: {goal}",
)


class BabyAIEnv(BabyAIOracle, BabyAIMacros, BabyAIText, TextEnv):
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
    ``split`` ("train" or "test"), ``num_train_seeds`` (train seeds per level, default 40), ``perturbation``
    (0..4: renamed macros, e.g. ``walk to <obj>``, ``grab <obj>``, and reworded missions; see
    :mod:`agentrm_gym.perturbation`).

    ## Version History
    v0: initial version (minigrid 3.2 levels; GoToObjS6 is minigrid's ``-v1``). Strict "open X after you
    open Y" missions get a fix of minigrid's sequence verifier, which otherwise fails them on the toggle
    that completes the first clause (see :func:`~agentrm_gym.envs.babyai.verifier.fix_strict_sequences`).
    """

    task_name = "BabyAI"
    invalid_action_message = NOT_RECOGNIZED
    command_vocabulary = ("turn left", "turn right", "move forward", "toggle", "drop")

    def __init__(self, split: str = "train", render_mode: str | None = None, num_train_seeds: int = 40,
                 perturbation: int = 0):
        super().__init__(split=split, render_mode=render_mode, perturbation=perturbation)
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
        self._subgoal_total = 0

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
            obs, _ = self.env.reset(seed=seed)
        fix_strict_sequences(self.env.instrs)
        self._seen = np.zeros((self.env.width, self.env.height), dtype=bool)
        self._label_counts = {}
        self._achieved = set()
        self._won = self._lost = False
        self._plan_cache = {}
        self._invalidate()
        self._view(obs["image"])
        self._subgoal_total = len(self._subgoal_checks())  # a function of the mission's clauses alone
        self._update_subgoals()
        return self.env.mission, self._describe()

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
            obs, reward, terminated, _, _ = self.env.step(a)
            self._invalidate()
            self._view(obs["image"])
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

        for k, leaf in enumerate(leaf_instrs(env.instrs)):
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
        total = self._subgoal_total
        return len(self._achieved) / total if total else 0.0

    def _success(self) -> bool:
        return self._won

    def perturbation_table(self) -> Perturbation:
        return PERTURBATION

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
        relink_instrs(env.instrs, env)
        env.agent_pos = tuple(state["agent_pos"])
        env.agent_dir = state["agent_dir"]
        env.step_count = state["step_count"]
        self._seen = state["seen"].copy()
        self._label_counts = dict(state["labels"])
        self._achieved = set(state["achieved"])
        self._won, self._lost = state["won"], state["lost"]
        self._invalidate()

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
