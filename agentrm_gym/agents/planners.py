"""Search planners over any text env: greedy, Best-of-N, step-level beam search and MCTS.

All planners take ``(policy, scorer)``, run one episode with :meth:`Planner.run(env, task_id, seed)` and
return a :class:`PlanResult`: the chosen :class:`~agentrm_gym.trajectory.Trajectory` plus :class:`Cost`
counters. They move between states with :func:`agentrm_gym.core.snapshot` / :func:`restore`, ask the
policy for all candidates of a step in one ``propose_batch`` call (env-bound baselines are asked state by
state), score all new states in one scorer call, and are deterministic for a given seed.

The scorer is a callable ``scorer(states) -> np.ndarray`` or an object with ``.score(states)`` (a reward
model). Without one, a planner that needs values uses the env's own progress rate
(:class:`~agentrm_gym.agents.scorers.ProgressScorer`, an oracle upper bound).

MCTS (AgentRM's explorer, arXiv 2502.18407; docs/pipeline.md, stage 3): UCT = V(c) + c * sqrt(2 ln
N(parent) / N(c)) with c = 0.4; expansion samples k actions (k = 3) and merges identical ones; each new
child gets ``rollouts`` full rollouts with the policy whose mean outcome (the scorer's value of the final
state, or its progress) is its initial V; back-up adds the visits to every ancestor and sets
V(n) = sum_c N(c) V(c) / sum_c N(c).
The returned trajectory is the rollout with the best outcome; the tree is returned too
(:meth:`MCTSTree.to_jsonl`) for the pipeline's explore stage.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agentrm_gym.agents.policy import Policy, Proposal
from agentrm_gym.agents.runner import initial_state, max_episode_steps, step_record, to_trajectory
from agentrm_gym.agents.scorers import ProgressScorer, as_scorer
from agentrm_gym.core import Snapshot, restore, snapshot
from agentrm_gym.files import write_text_atomic
from agentrm_gym.trajectory import AgentState, Trajectory, state_to_dict


@dataclass
class Cost:
    """What one planned episode cost."""

    env_steps: int = 0
    policy_calls: int = 0
    proposals: int = 0
    generated_tokens: int = 0
    scorer_calls: int = 0
    scored_states: int = 0
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class Candidate:
    """A search state: the agent's view plus the env snapshot behind it."""

    state: AgentState
    snap: Snapshot
    done: bool = False
    success: bool = False
    progress: float = 0.0
    score: float = 0.0


@dataclass
class PlanResult:
    """A planned episode: the chosen trajectory, its cost and (for MCTS) the search tree."""

    trajectory: Trajectory
    cost: Cost
    candidates: list[Trajectory] = field(default_factory=list)
    tree: MCTSTree | None = None


class Planner:
    """Base class; subclasses implement :meth:`_search`.

    Args:
        policy: any :class:`~agentrm_gym.agents.policy.Policy`.
        scorer: a callable or an object with ``.score(states)``; ``None``: the env's progress.
        temperature: sampling temperature of the policy.
        max_steps: step budget (default: the env's ``spec.max_episode_steps``).
    """

    name = "planner"

    def __init__(self, policy: Policy, scorer: Any = None, temperature: float = 1.0, max_steps: int | None = None):
        self.policy = policy
        self.scorer = as_scorer(scorer) or as_scorer(ProgressScorer())
        self.has_scorer = scorer is not None
        self.temperature = temperature
        self.max_steps = max_steps
        self._env: gym.Env | None = None
        self._at: Snapshot | None = None
        self.cost = Cost()

    # ------------------------------------------------------------------ public
    def run(self, env: gym.Env, task_id: str | None = None, seed: int = 0) -> PlanResult:
        """Plan one episode of ``task_id`` (default: drawn by ``seed`` from the env's split)."""
        self._env = env
        self.cost = Cost()
        start = time.perf_counter()
        self.policy.bind(env)
        self.policy.seed(seed)
        self._limit = self.max_steps or max_episode_steps(env)
        obs, info = env.reset(seed=seed, options={"task_id": task_id} if task_id is not None else None)
        root = Candidate(initial_state(env, obs, info), snapshot(env), progress=float(info["progress"]),
                         success=bool(info["success"]))
        self._at = root.snap
        result = self._search(root)
        self.cost.wall_seconds = time.perf_counter() - start
        result.cost = self.cost
        traj = result.trajectory
        traj.seed = seed
        traj.policy = self.policy.name
        traj.sampling = {"method": self.describe(), "temperature": self.temperature}
        traj.meta = {**traj.meta, "cost": self.cost.to_dict()}
        return result

    def describe(self) -> str:
        return self.name

    # ------------------------------------------------------------------ helpers for subclasses
    def _search(self, root: Candidate) -> PlanResult:
        raise NotImplementedError

    def _goto(self, cand: Candidate) -> None:
        if self._at is not cand.snap:
            restore(self._env, cand.snap)
            self._at = cand.snap

    def _propose(self, cands: Sequence[Candidate], n: int, temperature: float | None = None) -> list[list[Proposal]]:
        temperature = self.temperature if temperature is None else temperature
        if not cands:
            return []
        if self.policy.requires_env:
            out = []
            for c in cands:
                self._goto(c)
                out.append(self.policy.propose(c.state, n, temperature))
                self.cost.policy_calls += 1
        else:
            out = self.policy.propose_batch([c.state for c in cands], n, temperature)
            self.cost.policy_calls += 1
        for row in out:
            self.cost.proposals += len(row)
            self.cost.generated_tokens += sum(p.num_tokens for p in row)
        return out

    def _step(self, cand: Candidate, prop: Proposal) -> Candidate:
        self._goto(cand)
        obs, reward, term, trunc, info = self._env.step(prop.action)
        self.cost.env_steps += 1
        state = cand.state.extend(step_record(prop.thought, prop.action, obs, reward, info),
                                  info.get("admissible_actions"))
        snap = snapshot(self._env)
        self._at = snap
        done = bool(term or trunc) or len(state.steps) >= self._limit
        return Candidate(state, snap, done, bool(info["success"]), float(info["progress"]))

    def _score(self, cands: Sequence[Candidate]) -> np.ndarray:
        if not cands:
            return np.zeros(0)
        values = self.scorer([c.state for c in cands])
        self.cost.scorer_calls += 1
        self.cost.scored_states += len(cands)
        for c, v in zip(cands, values, strict=True):
            c.score = float(v)
        return values

    def _trajectory(self, cand: Candidate, **meta: Any) -> Trajectory:
        return to_trajectory(cand.state, cand.success, cand.progress, meta=meta)

    @staticmethod
    def _unique(props: Sequence[Proposal]) -> list[Proposal]:
        seen: dict[str, Proposal] = {}
        for p in props:
            seen.setdefault(p.action, p)
        return list(seen.values())


class Greedy(Planner):
    """One trajectory, one proposal a step (temperature 0 by default: the policy's argmax)."""

    name = "greedy"

    def __init__(self, policy: Policy, scorer: Any = None, temperature: float = 0.0, max_steps: int | None = None):
        super().__init__(policy, scorer, temperature, max_steps)

    def _search(self, root: Candidate) -> PlanResult:
        cand = root
        while not cand.done:
            cand = self._step(cand, self._propose([cand], 1)[0][0])
        return PlanResult(self._trajectory(cand), self.cost)


class BestOfN(Planner):
    """N sampled trajectories (advanced in lockstep, one batched policy call a step); keep the argmax
    of the scorer on the final states."""

    name = "bon"

    def __init__(self, policy: Policy, scorer: Any = None, n: int = 5, temperature: float = 1.0,
                 max_steps: int | None = None):
        super().__init__(policy, scorer, temperature, max_steps)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n

    def describe(self) -> str:
        return f"bon:{self.n}"

    def _search(self, root: Candidate) -> PlanResult:
        cands = [root] * self.n
        while True:
            active = [i for i, c in enumerate(cands) if not c.done]
            if not active:
                break
            props = self._propose([cands[i] for i in active], 1)
            for i, row in zip(active, props, strict=True):
                cands[i] = self._step(cands[i], row[0])
        scores = self._score(cands)
        best = int(np.argmax(scores))
        trajs = [self._trajectory(c, score=float(s)) for c, s in zip(cands, scores, strict=True)]
        return PlanResult(trajs[best], self.cost, candidates=trajs)


class BeamSearch(Planner):
    """Step-level beam search: W1 beams, W2 sampled expansions each (identical actions merged); all new
    states are scored in one call and the top W1 of (finished beams + children) are kept. The first step
    samples W1 * W2 actions from the root. Ends when every kept beam is finished; returns the best."""

    name = "beam"

    def __init__(self, policy: Policy, scorer: Any = None, beams: int = 5, expansions: int = 5,
                 temperature: float = 1.0, max_steps: int | None = None):
        super().__init__(policy, scorer, temperature, max_steps)
        if beams < 1 or expansions < 1:
            raise ValueError(f"beam widths must be >= 1, got {beams}x{expansions}")
        self.beams = beams
        self.expansions = expansions

    def describe(self) -> str:
        return f"beam:{self.beams}x{self.expansions}"

    def _search(self, root: Candidate) -> PlanResult:
        pool = [root]
        if root.done:
            self._score(pool)
        first = True
        while not all(c.done for c in pool):
            active = [c for c in pool if not c.done]
            n = self.beams * self.expansions if first else self.expansions
            first = False
            props = self._propose(active, n)
            children = [self._step(c, p) for c, row in zip(active, props, strict=True) for p in self._unique(row)]
            self._score(children)
            merged = [c for c in pool if c.done] + children
            order = sorted(range(len(merged)), key=lambda i: -merged[i].score)  # stable: ties keep order
            pool = [merged[i] for i in order[: self.beams]]
        best = max(range(len(pool)), key=lambda i: (pool[i].score, -i))
        trajs = [self._trajectory(c, score=c.score) for c in pool]
        return PlanResult(trajs[best], self.cost, candidates=trajs)


@dataclass
class MCTSNode:
    """A node of the search tree."""

    id: int
    parent: int | None
    action: str
    cand: Candidate
    N: int = 0
    V: float = 0.0
    children: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "parent": self.parent, "action": self.action, "N": self.N, "V": self.V,
            "children": list(self.children), "terminal": self.cand.done, "progress": self.cand.progress,
            "success": self.cand.success, "state": state_to_dict(self.cand.state),
        }


@dataclass
class MCTSTree:
    """The nodes of one MCTS search (node 0 is the root)."""

    nodes: list[MCTSNode] = field(default_factory=list)

    def to_records(self) -> list[dict[str, Any]]:
        return [n.to_dict() for n in self.nodes]

    def to_jsonl(self, path: str | Path) -> None:
        """Write one JSON node a line: ``{id, parent, action, state, N, V, children, ...}`` (atomically)."""
        write_text_atomic(path, "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in self.to_records()))

    def value_pairs(self, min_visits: int = 1) -> list[tuple[AgentState, float]]:
        """(state, V) of the nodes visited at least ``min_visits`` times (MCTS value labels)."""
        return [(n.cand.state, n.V) for n in self.nodes if n.N >= min_visits]


class MCTS(Planner):
    """Monte-Carlo tree search (see the module docstring for the formulas).

    Args:
        iterations: select-expand-simulate-backup iterations.
        k: actions sampled per expansion (identical ones merged).
        c: the UCT exploration constant.
        rollouts: rollouts per new child (their mean outcome is its initial value).
        rollout_temperature: sampling temperature of the rollouts (default: ``temperature``).
    """

    name = "mcts"

    def __init__(self, policy: Policy, scorer: Any = None, iterations: int = 30, k: int = 3, c: float = 0.4,
                 rollouts: int = 1, temperature: float = 1.0, rollout_temperature: float | None = None,
                 max_steps: int | None = None):
        super().__init__(policy, scorer, temperature, max_steps)
        if iterations < 1 or k < 1 or rollouts < 1:
            raise ValueError("iterations, k and rollouts must be >= 1")
        self.iterations, self.k, self.c, self.rollouts = iterations, k, c, rollouts
        self.rollout_temperature = temperature if rollout_temperature is None else rollout_temperature

    def describe(self) -> str:
        return f"mcts:{self.iterations}"

    def _uct(self, parent: MCTSNode, child: MCTSNode) -> float:
        if child.N == 0:
            return math.inf
        return child.V + self.c * math.sqrt(2 * math.log(max(1, parent.N)) / child.N)

    def _search(self, root: Candidate) -> PlanResult:
        tree = MCTSTree([MCTSNode(0, None, "", root)])
        best: tuple[float, int, Candidate] | None = None  # (outcome, -steps, final candidate)
        for _ in range(self.iterations):
            node = tree.nodes[0]
            path = [node]
            while node.children:
                node = max((tree.nodes[i] for i in node.children), key=lambda ch: self._uct(path[-1], ch))
                path.append(node)
            if node.cand.done:
                finals = [node.cand]
                if node.N == 0:
                    self._score(finals)
                outcome = node.cand.score
                node.N += 1
                node.V = outcome
            else:
                props = self._unique(self._propose([node.cand], self.k)[0])
                new = []
                for p in props:
                    child = MCTSNode(len(tree.nodes), node.id, p.action, self._step(node.cand, p))
                    tree.nodes.append(child)
                    node.children.append(child.id)
                    new.append(child)
                finals = self._rollout([ch.cand for ch in new for _ in range(self.rollouts)])
                values = self._score(finals)
                for j, ch in enumerate(new):
                    vals = values[j * self.rollouts:(j + 1) * self.rollouts]
                    ch.N = self.rollouts
                    ch.V = float(np.mean(vals))
            for f in finals:
                key = (f.score, -len(f.state.steps))
                if best is None or key > best[:2]:
                    best = (key[0], key[1], f)
            # back-up: N(n) = sum_c N(c) and V(n) = sum_c N(c) V(c) / sum_c N(c), leaf to root
            for n in reversed(path):
                if n.children:
                    kids = [tree.nodes[i] for i in n.children]
                    n.N = sum(ch.N for ch in kids)
                    n.V = sum(ch.N * ch.V for ch in kids) / max(1, n.N)
        assert best is not None
        traj = self._trajectory(best[2], score=best[0])
        return PlanResult(traj, self.cost, tree=tree)

    def _rollout(self, starts: list[Candidate]) -> list[Candidate]:
        """Play each start to the end with the policy (one batched policy call a step)."""
        cands = list(starts)
        while True:
            active = [i for i, c in enumerate(cands) if not c.done]
            if not active:
                return cands
            props = self._propose([cands[i] for i in active], 1, self.rollout_temperature)
            for i, row in zip(active, props, strict=True):
                cands[i] = self._step(cands[i], row[0])


def make_planner(method: str, policy: Policy, scorer: Any = None, temperature: float | None = None,
                 max_steps: int | None = None) -> Planner:
    """A planner from a method string: ``greedy``, ``bon:N``, ``beam:W1xW2``, ``mcts`` or ``mcts:ITERS``."""
    kw: dict[str, Any] = {"max_steps": max_steps}
    if temperature is not None:
        kw["temperature"] = temperature
    name, _, arg = method.partition(":")
    try:
        if name == "greedy":
            return Greedy(policy, scorer, **kw)
        if name in ("bon", "best_of_n"):
            return BestOfN(policy, scorer, n=int(arg or 5), **kw)
        if name in ("beam", "beam_search"):
            w1, _, w2 = (arg or "5x5").lower().partition("x")
            return BeamSearch(policy, scorer, beams=int(w1), expansions=int(w2 or w1), **kw)
        if name == "mcts":
            return MCTS(policy, scorer, iterations=int(arg or 30), **kw)
    except ValueError as exc:
        raise ValueError(f"bad method {method!r}: {exc}") from exc
    raise ValueError(f"unknown method {method!r}; use greedy, bon:N, beam:W1xW2 or mcts[:ITERS]")
