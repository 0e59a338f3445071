"""Stage 4, extract: (state, value) training pairs for the explicit RM.

Labels (``cfg.labels``):

* ``mcts`` (AgentRM) - every tree node visited at least ``min_visits`` (lambda) times, valued by its
  MCTS value V (the visit-weighted mean outcome below it): :meth:`MCTSTree.value_pairs` on the saved trees;
* ``td`` (AgentPRM, arXiv 2511.08325) - on every rollout trajectory saved by the explore stage,
  Q_T = R and Q_t = gamma * ((1 - lam) * q_{t+1} + lam * Q_{t+1}) with lam = ``td_lambda``, where q is the
  MCTS value of the state when the trees hold it (a rollout starts at a tree node) and Q itself otherwise;
* ``mc`` - plain Monte-Carlo returns Q_t = gamma^(T - t) * R on the same trajectories.

R is the final progress. Duplicate states (same text) are averaged. Writes ``<run>/extract/pairs.jsonl``
(``{"state": {...}, "value": v, "task", "task_id"}`` a line) and ``done.json``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.files import write_jsonl_atomic
from agentrm_gym.train.common import begin_stage
from agentrm_gym.train.config import PipelineConfig
from agentrm_gym.trajectory import AgentState, read_jsonl, state_from_dict, state_to_dict


def tree_pairs(tree_file: str | Path, min_visits: int) -> list[tuple[AgentState, float]]:
    """(state, V) of the nodes of one saved tree with N >= ``min_visits``."""
    return [(state_from_dict(n["state"]), float(n["V"])) for n in read_jsonl(tree_file) if n["N"] >= min_visits]


def td_targets(rewards_final: float, q_next: list[float | None], gamma: float, lam: float) -> list[float]:
    """TD(lambda) targets Q_0..Q_T of a T-step trajectory.

    Args:
        rewards_final: the outcome R (given at the end only).
        q_next: ``q_{t}`` for t = 0..T (value estimates of the states; ``None`` where unknown, then the
            lambda-return itself is used, i.e. the Monte-Carlo continuation).
    """
    T = len(q_next) - 1
    Q = [0.0] * (T + 1)
    Q[T] = rewards_final
    for t in range(T - 1, -1, -1):
        q = q_next[t + 1]
        q = Q[t + 1] if q is None else q
        Q[t] = gamma * ((1 - lam) * q + lam * Q[t + 1])
    return Q


def rollout_pairs(rollouts: list[dict[str, Any]], tree_values: dict[str, float], labels: str, gamma: float,
                  lam: float) -> list[tuple[AgentState, float]]:
    """TD(lambda) or Monte-Carlo pairs of every prefix of every rollout trajectory."""
    out = []
    for r in rollouts:
        full = state_from_dict(r)  # a rollout record holds a state's fields
        steps = full.steps
        states = [replace(full, steps=steps[:t]) for t in range(len(steps) + 1)]
        R = float(r["progress"])
        if labels == "mc":
            T = len(steps)
            values = [R * gamma ** (T - t) for t in range(T + 1)]
        else:
            values = td_targets(R, [tree_values.get(s.key()) for s in states], gamma, lam)
        out += list(zip(states, values, strict=True))
    return out


def dedupe(pairs: list[tuple[AgentState, float]]) -> list[tuple[AgentState, float]]:
    """Average the values of identical states (same RM-visible content)."""
    groups: dict[str, list[Any]] = defaultdict(list)
    first: dict[str, AgentState] = {}
    for s, v in pairs:
        k = s.key()
        first.setdefault(k, s)
        groups[k].append(v)
    return [(first[k], float(np.mean(vs))) for k, vs in groups.items()]


def run_extract(cfg: PipelineConfig, root: str | Path) -> dict[str, Any]:
    """Write the training pairs; returns the stage summary."""
    stage = begin_stage(root, "extract", mkdir=False)
    if stage.done:
        return stage.summary
    if cfg.labels not in ("mcts", "td", "mc"):
        raise ValueError(f"labels must be mcts, td or mc, got {cfg.labels!r}")
    out = stage.out
    explore = Path(root) / "explore"
    trees = sorted((explore / "trees").glob("*.jsonl"))
    pairs: list[tuple[AgentState, float]] = []
    if cfg.labels == "mcts":
        for f in trees:
            pairs += tree_pairs(f, cfg.min_visits)
    else:
        tree_values = {}
        for f in trees:
            for s, v in tree_pairs(f, cfg.min_visits):
                tree_values[s.key()] = v
        rollouts = list(read_jsonl(explore / "rollouts.jsonl")) if (explore / "rollouts.jsonl").exists() else []
        pairs = rollout_pairs(rollouts, tree_values, cfg.labels, cfg.td_gamma, cfg.td_lambda)
    pairs = dedupe(pairs)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(out / "pairs.jsonl", [{"state": state_to_dict(s), "value": v, "task": s.task,
                                              "task_id": s.task_id} for s, v in pairs])
    values = np.array([v for _, v in pairs]) if pairs else np.zeros(0)
    per_task = {t: sum(1 for s, _ in pairs if s.task == t) for t in sorted({s.task for s, _ in pairs})}
    return stage.finish({"labels": cfg.labels, "pairs": len(pairs), "per_task": per_task,
                         "value_mean": float(values.mean()) if len(values) else None,
                         "value_std": float(values.std()) if len(values) else None,
                         "nonzero_fraction": float(np.mean(values > 0)) if len(values) else None})
