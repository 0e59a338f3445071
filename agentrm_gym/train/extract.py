"""Stage 4, extract: (state, value) training pairs for the explicit RM.

Labels (``cfg.labels``):

* ``mcts`` (AgentRM) - every tree node visited at least ``min_visits`` (lambda) times, valued by its
  MCTS value V (the visit-weighted mean outcome below it): :meth:`MCTSTree.value_pairs` on the saved trees;
* ``td`` (AgentPRM, arXiv 2511.08325) - on every rollout trajectory saved by the explore stage,
  Q_T = R and Q_t = gamma * ((1 - lam) * q_{t+1} + lam * Q_{t+1}) with lam = ``td_lambda``, where q is the
  MCTS value of the state when the trees hold it (a rollout starts at a tree node) and Q itself otherwise;
* ``mc`` - plain Monte-Carlo returns Q_t = gamma^(T - t) * R on the same trajectories.

R is the final progress. On top of these, the sampled groups of the explore stage (``groups.jsonl``) give
every candidate's *final* state valued by its final progress (the states Best-of-N ranks), and with
``group_prefix_stride = k`` every k-th prefix valued by the same Monte-Carlo return.

Every pair carries a ``group``: the states that are compared with each other (the candidates of one
sampled group; the prefixes of one group at one depth; the children of one tree node; the prefixes of
the rollouts of one tree at one depth). The RM centres its targets within groups and is validated
within them. Duplicate states (same text) within a group are averaged. Writes
``<run>/extract/pairs.jsonl`` (``{"state": {...}, "value": v, "task", "task_id", "group", "source"}`` a line)
and ``done.json``, which records the pair count and the file's sha256: :func:`verify_pairs` (called by the
train-rm stage) checks both, so a ``pairs.jsonl`` damaged after extract finished (cut mid-record, lines
lost) is an error naming the file instead of an RM silently trained on part of the data.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.files import write_jsonl_atomic
from agentrm_gym.train.common import begin_stage, is_done, read_done
from agentrm_gym.train.config import CorruptRunFile, PipelineConfig
from agentrm_gym.trajectory import AgentState, read_jsonl, state_from_dict, state_to_dict


def tree_pairs(tree_file: str | Path, min_visits: int) -> list[tuple[AgentState, float]]:
    """(state, V) of the nodes of one saved tree with N >= ``min_visits``."""
    return [(state_from_dict(n["state"]), float(n["V"])) for n in read_jsonl(tree_file) if n["N"] >= min_visits]


def tree_records(tree_file: str | Path, min_visits: int) -> list[dict[str, Any]]:
    """Pair records of one tree's nodes with N >= ``min_visits``, grouped by parent (siblings)."""
    name = Path(tree_file).stem
    out = []
    for n in read_jsonl(tree_file):
        if n["N"] >= min_visits:
            state = state_from_dict(n["state"])
            out.append(_record(state, float(n["V"]), f"tree/{name}/{n['parent']}", "mcts"))
    return out


def group_records(groups: list[dict[str, Any]], prefix_stride: int = 0) -> list[dict[str, Any]]:
    """Final states of the sampled groups valued by final progress; optionally every ``prefix_stride``-th
    prefix valued by the same return, grouped by (group, depth)."""
    from agentrm_gym.trajectory import Trajectory

    out = []
    for g in groups:
        key = f"group/{g['task']}/{g['task_id']}"
        for c in g["candidates"]:
            traj = Trajectory.from_dict(c["trajectory"])
            value = float(c["progress"])
            out.append(_record(traj.state(), value, key, "group"))
            if prefix_stride > 0:
                for t in range(prefix_stride, len(traj.steps), prefix_stride):
                    out.append(_record(traj.state(upto=t), value, f"{key}/depth{t}", "group_prefix"))
    return out


def _record(state: AgentState, value: float, group: str, source: str) -> dict[str, Any]:
    return {"state": state, "value": value, "task": state.task, "task_id": state.task_id, "group": group,
            "source": source}


def dedupe_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Average the values of identical states within a group (keeps the first record's other fields)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in records:
        k = (r["group"], r["state"].key())
        merged.setdefault(k, r)
        values[k].append(r["value"])
    return [{**r, "value": float(np.mean(values[k]))} for k, r in merged.items()]


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
    records: list[dict[str, Any]] = []
    if cfg.labels == "mcts":
        for f in trees:
            records += tree_records(f, cfg.min_visits)
    else:
        tree_values = {}
        for f in trees:
            for s, v in tree_pairs(f, cfg.min_visits):
                tree_values[s.key()] = v
        rollouts = list(read_jsonl(explore / "rollouts.jsonl")) if (explore / "rollouts.jsonl").exists() else []
        for s, v in rollout_pairs(rollouts, tree_values, cfg.labels, cfg.td_gamma, cfg.td_lambda):
            records.append(_record(s, v, f"rollout/{s.task}/{s.task_id}/depth{len(s.steps)}", cfg.labels))
    groups_file = explore / "groups.jsonl"
    if groups_file.exists():
        records += group_records(list(read_jsonl(groups_file)), cfg.group_prefix_stride)
    records = dedupe_records(records)
    out.mkdir(parents=True, exist_ok=True)
    pairs_file = write_jsonl_atomic(out / "pairs.jsonl", [{**r, "state": state_to_dict(r["state"])} for r in records])
    digest = hashlib.sha256(pairs_file.read_bytes()).hexdigest()
    values = np.array([r["value"] for r in records]) if records else np.zeros(0)
    per_task = {t: sum(1 for r in records if r["task"] == t) for t in sorted({r["task"] for r in records})}
    per_source = {k: sum(1 for r in records if r["source"] == k) for k in sorted({r["source"] for r in records})}
    return stage.finish({"labels": cfg.labels, "pairs": len(records), "pairs_sha256": digest,
                         "per_task": per_task, "per_source": per_source,
                         "value_mean": float(values.mean()) if len(values) else None,
                         "value_std": float(values.std()) if len(values) else None,
                         "nonzero_fraction": float(np.mean(values > 0)) if len(values) else None})


def verify_pairs(root: str | Path) -> int:
    """Check ``<run>/extract/pairs.jsonl`` against what the extract stage recorded in its ``done.json``
    (the sha256 of the file and the number of pairs; older runs have only the count); every line must be a
    complete JSON record. Returns the number of pairs.

    Raises:
        CorruptRunFile: the file is missing, changed, cut short or holds a damaged line (the message names
            it and says to delete ``extract/`` to redo the stage).
    """
    extract = Path(root) / "extract"
    path = extract / "pairs.jsonl"
    remedy = f"delete {extract} to redo the extract stage"
    if not path.is_file():
        raise CorruptRunFile(f"{path}: missing; {remedy}")
    data = path.read_bytes()
    summary = read_done(extract) if is_done(extract) else {}
    want_sha = summary.get("pairs_sha256")
    if want_sha is not None and hashlib.sha256(data).hexdigest() != want_sha:
        raise CorruptRunFile(f"{path}: changed since the extract stage wrote it (sha256 differs from "
                             f"{extract / 'done.json'}: cut short or edited); {remedy}")
    lines = data.splitlines()
    if data and not data.endswith(b"\n"):
        raise CorruptRunFile(f"{path}: the last record is cut short (no final newline); {remedy}")
    n = 0
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptRunFile(f"{path}:{i + 1}: damaged record ({exc}); {remedy}") from exc
        n += 1
    want = summary.get("pairs")
    if want is not None and n != want:
        raise CorruptRunFile(f"{path}: {n} pairs where the extract stage wrote {want}; {remedy}")
    return n


def load_pairs(root: str | Path) -> list[dict[str, Any]]:
    """The run's pairs, checked whole by :func:`verify_pairs`, each with its ``state`` parsed to an
    :class:`~agentrm_gym.trajectory.AgentState` (what every RM trainer and the RM benchmarks read)."""
    verify_pairs(root)
    return [{**p, "state": state_from_dict(p["state"])} for p in read_jsonl(Path(root) / "extract" / "pairs.jsonl")]
