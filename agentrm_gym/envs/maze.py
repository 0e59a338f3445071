"""Maze: LMRL-Gym's double-T maze (AgentGym's text version) and generated mazes.

Besides :class:`MazeEnv` this module holds Maze's own oracle scorer for planners,
:class:`MazeDistanceScorer` (the BFS distance to the goal, read from the observations); the task table
names it (``TaskSpec.scorer``), so planners find it through :func:`agentrm_gym.registry.task_scorer`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from agentrm_gym.core import StepOutcome, TextEnv, UnknownTask
from agentrm_gym.perturbation import Perturbation

if TYPE_CHECKING:
    from agentrm_gym.trajectory import AgentState

#: LMRL-Gym ``double_t_maze`` (1 = wall), 10 rows x 13 columns.
DOUBLE_T_MAZE = (
    "1111111111111",
    "1000001000001",
    "1110111110111",
    "1110111110111",
    "1110111110111",
    "1110000000111",
    "1111110111111",
    "1111110111111",
    "1111110111111",
    "1111111111111",
)
DOUBLE_T_GOAL = (8, 6)

#: Direction name -> (row delta, column delta, wall phrase). Positions are (row, column): up = row - 1.
MOVES = {
    "up": (-1, 0, "above you"),
    "down": (1, 0, "below you"),
    "left": (0, -1, "to your left"),
    "right": (0, 1, "to your right"),
}
ACTIONS = tuple(f"move {d}" for d in MOVES)
#: ``perturbation >= 1``: compass moves ("move up" -> "go north"); goals name rows and columns.
COMPASS = {"up": "north", "down": "south", "left": "west", "right": "east"}
PERTURBATION = Perturbation(
    [(f"move {d}", f"go {c}") for d, c in COMPASS.items()],
    observation_phrases=[(rf"\bmove {d}\b", f"go {c}") for d, c in COMPASS.items()],
    instruction_phrases=[*((rf"\bmove {d}\b", f"go {c}") for d, c in COMPASS.items()),
                         (r"moving up decreases the row, moving right increases the column",
                          "going north decreases the row, going east increases the column")],
    goal_rules=[(r"^Reach the goal at position (\d+), (\d+)\.$", r"Get to the target cell in row \1, column \2.")],
)

Cell = tuple[int, int]


def parse_grid(rows: tuple[str, ...] | list[str]) -> np.ndarray:
    """A boolean wall array from rows of '0'/'1' characters."""
    return np.array([[c == "1" for c in row] for row in rows], dtype=bool)


def bfs_distances(walls: np.ndarray, goal: Cell) -> dict[Cell, int]:
    """Shortest-path distance from every reachable open cell to ``goal``."""
    dist = {goal: 0}
    queue = deque([goal])
    while queue:
        r, c = queue.popleft()
        for dr, dc, _ in MOVES.values():
            nxt = (r + dr, c + dc)
            if (
                0 <= nxt[0] < walls.shape[0]
                and 0 <= nxt[1] < walls.shape[1]
                and not walls[nxt]
                and nxt not in dist
            ):
                dist[nxt] = dist[(r, c)] + 1
                queue.append(nxt)
    return dist


def generate_maze(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A perfect maze (randomised depth-first carving) of odd ``height`` x ``width``, walls around it."""
    if height < 5 or width < 5 or height % 2 == 0 or width % 2 == 0:
        raise ValueError(f"generated mazes need odd sizes >= 5, got {height}x{width}")
    walls = np.ones((height, width), dtype=bool)
    start = (1, 1)
    walls[start] = False
    stack = [start]
    while stack:
        r, c = stack[-1]
        options = [
            (r + 2 * dr, c + 2 * dc, dr, dc)
            for dr, dc, _ in MOVES.values()
            if 0 < r + 2 * dr < height - 1 and 0 < c + 2 * dc < width - 1 and walls[r + 2 * dr, c + 2 * dc]
        ]
        if not options:
            stack.pop()
            continue
        nr, nc, dr, dc = options[int(rng.integers(len(options)))]
        walls[r + dr, c + dc] = False
        walls[nr, nc] = False
        stack.append((nr, nc))
    # knock out a few extra walls so that there are loops and dead ends are not the only choice
    inner = [(r, c) for r in range(1, height - 1) for c in range(1, width - 1) if walls[r, c]]
    for idx in rng.permutation(len(inner))[: max(1, len(inner) // 12)]:
        walls[inner[idx]] = False
    return walls


class MazeEnv(TextEnv):
    """You are an expert maze solver; move through the maze to reach the goal position.

    ## Description
    The text maze of LMRL-Gym as AgentGym/AgentBoard present it. The test split is the
    ``double_t_maze`` (10 x 13) from each of its 25 open start cells with the goal at (8, 6); the train
    split is generated mazes (odd sizes between 7 and ``max_size``) with random start and goal.

    ## Action Space
    ``move up``, ``move down``, ``move left``, ``move right`` (up decreases the row). Anything else is
    invalid and leaves the state unchanged; ``check valid actions`` lists the four moves.

    ## Observation Space
    "The goal is at position 8, 6. Your current position is at position 5, 4. There are walls above you,
    below you." Moving into a wall leaves the position unchanged and says so.

    ## Rewards
    The increase of the progress rate: the fraction of the start's shortest-path distance covered at the
    best point reached so far, ``1 - d(best) / d(start)``, so 1 at the goal. Each cell nearer to the goal
    (by BFS distance) is a subgoal.

    ## Starting State / Episode End
    Reset places the agent at the task's start cell. Terminates at the goal ("Success"); truncated by
    ``max_episode_steps`` (50).

    ## Arguments
    ``split`` ("train" or "test"), ``num_train`` (number of generated train tasks), ``max_size``,
    ``perturbation`` (0..4: ``move up`` becomes ``go north`` etc., reworded goals; see
    :mod:`agentrm_gym.perturbation`).

    ## Version History
    v0: initial version.
    """

    task_name = "Maze"
    command_vocabulary = ACTIONS

    def __init__(self, split: str = "train", render_mode: str | None = None, num_train: int = 2000,
                 max_size: int = 13, perturbation: int = 0):
        super().__init__(split=split, render_mode=render_mode, perturbation=perturbation)
        if num_train < 1:
            raise ValueError(f"num_train must be >= 1, got {num_train}")
        if max_size < 7:
            raise ValueError(f"max_size must be >= 7, got {max_size}")
        self.num_train = num_train
        self.max_size = max_size
        self._double_t = parse_grid(DOUBLE_T_MAZE)
        self._test_starts = [
            (r, c)
            for r in range(self._double_t.shape[0])
            for c in range(self._double_t.shape[1])
            if not self._double_t[r, c] and (r, c) != DOUBLE_T_GOAL
        ]
        self.walls = self._double_t
        self.goal_pos: Cell = DOUBLE_T_GOAL
        self.pos: Cell = DOUBLE_T_GOAL
        self._dist: dict[Cell, int] = {}
        self._start_dist = 1

    # -------------------------------------------------------------- tasks
    def task_ids(self, split: str = "test") -> list[str]:
        if split == "test":
            return [f"double_t-{r}-{c}" for r, c in self._test_starts]
        if split == "train":
            return [f"gen-{i}" for i in range(self.num_train)]
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")

    def _world(self, task_id: str) -> tuple[np.ndarray, Cell, Cell]:
        kind, _, rest = task_id.partition("-")
        try:
            if kind == "double_t":
                r, c = (int(x) for x in rest.split("-"))
                if (r, c) not in self._test_starts:
                    raise ValueError
                return self._double_t, (r, c), DOUBLE_T_GOAL
            if kind == "gen":
                index = int(rest)
                rng = np.random.default_rng([17, index])
                sizes = list(range(7, self.max_size + 1, 2))
                h, w = int(rng.choice(sizes)), int(rng.choice(sizes))
                walls = generate_maze(h, w, rng)
                open_cells = [tuple(map(int, rc)) for rc in np.argwhere(~walls)]
                goal = open_cells[int(rng.integers(len(open_cells)))]
                dist = bfs_distances(walls, goal)
                far = [cell for cell, d in dist.items() if d >= 3] or [cell for cell in dist if cell != goal]
                start = far[int(rng.integers(len(far)))]
                return walls, start, goal
        except ValueError:
            pass
        raise UnknownTask(f"Maze: {task_id!r}; ids look like 'double_t-5-4' (test) or 'gen-12' (train)")

    def _load_task(self, task_id: str) -> tuple[str, str]:
        self.walls, self.pos, self.goal_pos = self._world(task_id)
        self._dist = bfs_distances(self.walls, self.goal_pos)
        self._start_dist = max(1, self._dist[self.pos])
        goal = f"Reach the goal at position {self.goal_pos[0]}, {self.goal_pos[1]}."
        return goal, self._describe()

    # -------------------------------------------------------------- dynamics
    def _describe(self) -> str:
        r, c = self.pos
        blocked = [phrase for dr, dc, phrase in MOVES.values() if self._is_wall((r + dr, c + dc))]
        if not blocked:
            walls = "There are no walls around you."
        elif len(blocked) == 1:
            walls = f"There is a wall {blocked[0]}."
        else:
            walls = "There are walls " + ", ".join(blocked) + "."
        return (
            f"The goal is at position {self.goal_pos[0]}, {self.goal_pos[1]}. "
            f"Your current position is at position {r}, {c}. {walls}"
        )

    def _is_wall(self, cell: Cell) -> bool:
        r, c = cell
        return not (0 <= r < self.walls.shape[0] and 0 <= c < self.walls.shape[1]) or bool(self.walls[r, c])

    def _step(self, action: str) -> StepOutcome:
        words = action.lower().split()
        if len(words) != 2 or words[0] != "move" or words[1] not in MOVES:
            return StepOutcome(
                "Invalid action. Valid actions are: move up, move down, move left, move right.", valid=False
            )
        dr, dc, _ = MOVES[words[1]]
        target = (self.pos[0] + dr, self.pos[1] + dc)
        if self._is_wall(target):
            return StepOutcome(
                f"You cannot move {words[1]}: there is a wall, so your position is unchanged. " + self._describe()
            )
        self.pos = target
        if self.pos == self.goal_pos:
            return StepOutcome("Success")
        return StepOutcome(self._describe())

    def _progress(self) -> float:
        return 1.0 - self._dist.get(self.pos, self._start_dist) / self._start_dist

    def _success(self) -> bool:
        return self.pos == self.goal_pos

    def admissible_actions(self) -> list[str]:
        return list(ACTIONS)

    def expert_action(self) -> str | None:
        here = self._dist.get(self.pos)
        if not here:
            return None
        for name, (dr, dc, _) in MOVES.items():
            if self._dist.get((self.pos[0] + dr, self.pos[1] + dc), here) < here:
                return f"move {name}"
        return None

    def distance_to_goal(self) -> int:
        """BFS distance from the agent to the goal (an oracle value, used by tests and RM evaluation)."""
        return self._dist.get(self.pos, self._start_dist)

    def perturbation_table(self) -> Perturbation:
        return PERTURBATION

    def _get_state(self) -> Any:
        return self.pos

    def _set_state(self, state: Any) -> None:
        self.pos = tuple(state)

    def instruction(self) -> str:
        return (
            "You are an expert maze solver. Your objective is to reach the goal in as few steps as possible. "
            "At each step you will be told your current position and the walls that surround you. Positions "
            "are given as (row, column): moving up decreases the row, moving right increases the column.\n"
            "The available actions are: move up, move down, move left, move right."
        )


# ------------------------------------------------------------------ the oracle scorer of planners
_POSITION = re.compile(r"current position is at position (\d+),\s*(\d+)")
_GOAL = re.compile(r"goal is at position (\d+),\s*(\d+)")


@lru_cache(maxsize=256)
def _maze_distances(task_id: str) -> tuple[dict[tuple[int, int], int], tuple[int, int]]:
    walls, _, goal = MazeEnv()._world(task_id)
    return bfs_distances(walls, goal), goal


class MazeDistanceScorer:
    """``1 - d(position) / d(start)`` with ``d`` the BFS distance to the goal (1.0 at the goal).

    A planner scorer (``scorer(states) -> np.ndarray``) for Maze, an oracle: it reads the maze. The
    position is parsed from the latest observation that states one ("Success" means the goal); the
    maze comes from the state's ``task_id``. Unlike a progress scorer it is not monotone: walking away
    from the goal lowers the score.
    """

    def score(self, states: Sequence[AgentState]) -> np.ndarray:
        return np.array([self._one(s) for s in states], dtype=np.float64)

    __call__ = score

    def _one(self, state: AgentState) -> float:
        dist, goal = _maze_distances(state.task_id)
        start = _POSITION.search(state.observation)
        d0 = dist.get((int(start[1]), int(start[2])), 1) if start else 1
        for obs in [s.observation for s in reversed(state.steps)] + [state.observation]:
            if obs.strip() == "Success":
                return 1.0
            m = _POSITION.search(obs)
            if m:
                d = dist.get((int(m[1]), int(m[2])), d0)
                return 1.0 - d / max(1, d0)
        return 0.0
