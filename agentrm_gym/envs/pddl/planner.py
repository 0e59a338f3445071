"""Heuristic search for the PDDL oracle: A* with h_FF / h_add (near-optimal) or h_max (optimal).

``h_add`` (Bonet & Geffner 2001) sums the relaxed costs of the goal facts; ``h_FF`` (Hoffmann & Nebel
2001) counts the actions of the relaxed plan read off h_add's best supporters, so an action shared by
several goals (gripper's moves) counts once. Both are informative, not admissible: A* with them finds
short plans fast but not always the shortest. ``h_max`` takes the maximum instead: admissible and
consistent for unit costs, so A* with it returns optimal plans (slower; used by tests to bound the
oracle's plan lengths). :class:`Oracle` caches the next action of every state on each plan it
finds, so following the oracle costs one search per episode.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

from agentrm_gym.envs.pddl.engine import State, Task

INF = math.inf


class RelaxedHeuristic:
    """h_add / h_FF / h_max over a grounded task (delete relaxation, negative preconditions ignored).

    Args:
        task: the grounded task.
        kind: ``"add"``, ``"ff"`` or ``"max"``.
    """

    def __init__(self, task: Task, kind: str = "add"):
        if kind not in ("add", "ff", "max"):
            raise ValueError(f"heuristic kind must be 'add', 'ff' or 'max', got {kind!r}")
        self.task = task
        self.kind = kind
        n_facts = len(task.facts)
        self.pre_of: list[list[int]] = [[] for _ in range(n_facts)]
        self.pre_count = [len(a.pre) for a in task.actions]
        self.adds = [tuple(a.add) for a in task.actions]
        self.pres = [tuple(a.pre) for a in task.actions]
        self.free_actions = [a.index for a in task.actions if not a.pre]
        for a in task.actions:
            for f in a.pre:
                self.pre_of[f].append(a.index)
        self._cache: dict[State, float] = {}

    def __call__(self, state: State) -> float:
        h = self._cache.get(state)
        if h is None:
            h = self._compute(state)
            if len(self._cache) > 500_000:
                self._cache.clear()
            self._cache[state] = h
        return h

    def _compute(self, state: State) -> float:
        task = self.task
        neg_violated = len(task.goal_neg & state)
        open_goals = set(task.goal_pos - state)
        if not open_goals:
            return float(neg_violated)
        use_sum = self.kind != "max"
        goals = tuple(open_goals)
        supporter: dict[int, int] = {}
        cost: dict[int, float] = dict.fromkeys(state, 0.0)
        remaining = self.pre_count.copy()
        acc = [0.0] * len(remaining)
        heap: list[tuple[float, int]] = [(0.0, f) for f in state]
        heapq.heapify(heap)
        for ai in self.free_actions:
            for g in self.adds[ai]:
                if cost.get(g, INF) > 1.0:
                    cost[g] = 1.0
                    supporter[g] = ai
                    heapq.heappush(heap, (1.0, g))
        total = 0.0
        while heap:
            c, f = heapq.heappop(heap)
            if c > cost.get(f, INF):
                continue
            if f in open_goals:
                open_goals.discard(f)
                total = total + c if use_sum else max(total, c)
                if not open_goals:
                    if self.kind == "ff":
                        return self._relaxed_plan_size(state, goals, supporter) + neg_violated
                    return total + neg_violated
            for ai in self.pre_of[f]:
                acc[ai] = acc[ai] + c if use_sum else max(acc[ai], c)
                remaining[ai] -= 1
                if remaining[ai] == 0:
                    nc = acc[ai] + 1.0
                    for g in self.adds[ai]:
                        if nc < cost.get(g, INF):
                            cost[g] = nc
                            supporter[g] = ai
                            heapq.heappush(heap, (nc, g))
        return INF

    def _relaxed_plan_size(self, state: State, goals: tuple[int, ...], supporter: dict[int, int]) -> float:
        chosen: set[int] = set()
        seen: set[int] = set()
        stack = list(goals)
        while stack:
            f = stack.pop()
            if f in seen or f in state:
                continue
            seen.add(f)
            ai = supporter[f]
            if ai not in chosen:
                chosen.add(ai)
                stack.extend(self.pres[ai])
        return float(len(chosen))


def astar(
    task: Task,
    start: State,
    heuristic: Callable[[State], float],
    weight: float = 1.0,
    max_nodes: int = 200_000,
) -> list[int] | None:
    """A* (``weight`` > 1: weighted A*) from ``start``; the plan as action indices, or ``None``.

    States are re-opened when a cheaper path is found, so an admissible heuristic gives optimal plans.
    Ties are broken by the smaller heuristic, then by insertion order (deterministic).
    """
    h0 = heuristic(start)
    if h0 == INF:
        return None
    g: dict[State, int] = {start: 0}
    parent: dict[State, tuple[State, int] | None] = {start: None}
    counter = 0
    open_list: list[tuple[float, float, int, int, State]] = [(weight * h0, h0, counter, 0, start)]
    expanded = 0
    while open_list:
        _, _, _, gs, state = heapq.heappop(open_list)
        if gs > g[state]:
            continue
        if task.is_goal(state):
            plan: list[int] = []
            node = parent[state]
            while node is not None:
                prev, action = node
                plan.append(action)
                node = parent[prev]
            return plan[::-1]
        expanded += 1
        if expanded > max_nodes:
            return None
        ng = gs + 1
        for ai in task.applicable(state):
            nxt = task.apply(state, ai)
            if ng < g.get(nxt, 1 << 30):
                h = heuristic(nxt)
                if h == INF:
                    continue
                g[nxt] = ng
                parent[nxt] = (state, ai)
                counter += 1
                heapq.heappush(open_list, (ng + weight * h, h, counter, ng, nxt))
    return None


def optimal_plan(task: Task, start: State | None = None, max_nodes: int = 500_000) -> list[int] | None:
    """A shortest plan (A* with the admissible h_max), or ``None`` beyond ``max_nodes`` expansions."""
    return astar(task, task.init if start is None else start, RelaxedHeuristic(task, "max"), 1.0, max_nodes)


class Oracle:
    """The expert of a task: the next action of a near-optimal plan from any state.

    It runs A* with h_FF from a state it has not seen, then weighted A* (w = 5, h_add) if that exceeds
    its node budget, and remembers the next action of every state along the plan found.

    Args:
        task: the grounded task.
        max_nodes: node budget per search.
    """

    def __init__(self, task: Task, max_nodes: int = 50_000):
        self.task = task
        self.max_nodes = max_nodes
        self.h_ff = RelaxedHeuristic(task, "ff")
        self.h_add = RelaxedHeuristic(task, "add")
        self._next: dict[State, int | None] = {}

    def plan(self, state: State) -> list[int] | None:
        """A plan from ``state`` (action indices), or ``None`` when none was found."""
        plan = astar(self.task, state, self.h_ff, 1.0, self.max_nodes)
        if plan is None:
            plan = astar(self.task, state, self.h_add, 5.0, self.max_nodes)
        return plan

    def next_action(self, state: State) -> int | None:
        """The oracle's action in ``state`` (``None`` at a goal or a dead end)."""
        if state in self._next:
            return self._next[state]
        if self.task.is_goal(state):
            return None
        plan = self.plan(state)
        if plan is None:
            self._next[state] = None
            return None
        s = state
        for ai in plan:
            self._next[s] = ai
            s = self.task.apply(s, ai)
        return self._next[state]


def oracle_for(task: Task) -> Oracle:
    """The task's oracle, created once and kept on the task."""
    if not isinstance(task.planner_cache, Oracle):
        task.planner_cache = Oracle(task)
    return task.planner_cache
