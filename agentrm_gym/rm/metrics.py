"""RM quality the way RMB (arXiv 2410.09893) measures it, on comparison sets built from an env's oracle.

* :func:`build_comparison_sets` - walks the oracle's path through held-out tasks and, at sampled steps,
  pairs the state after the oracle action (chosen) with the state after a non-oracle admissible action
  (rejected); per task, one Best-of-N set: the oracle trajectory against 2-6 worse ones (oracle prefix,
  then a non-oracle action and random admissible actions, same length, lower final progress). Where the
  env can compute an oracle value (:func:`oracle_value`), every collected state also gets one.
* :func:`pairwise_accuracy` (chosen scored strictly above rejected), :func:`best_of_n_accuracy` (the good
  trajectory scored strictly above every loser; ties count as wrong, so a constant RM scores 0) and
  :func:`spearman` correlation with the oracle values; :func:`evaluate_rm` reports all three.
* :func:`oracle_value_samples` - epsilon-greedy oracle rollouts labelled with oracle values: quick training
  data for a value RM (the Maze example and tests use it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from agentrm_gym.core import CHECK_VALID_ACTIONS, TextEnv, oracle_value_of, restore, unwrap_text_env
from agentrm_gym.trajectory import AgentState, Step

Scorer = Callable[[Sequence[AgentState]], np.ndarray]


# ---------------------------------------------------------------------------- statistics
def rank_average(x: np.ndarray) -> np.ndarray:
    """Ranks (0-based) with ties given their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation (ties averaged); NaN when either side is constant or too short."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) != len(b):
        raise ValueError(f"spearman needs equal lengths, got {len(a)} and {len(b)}")
    if len(a) < 2:
        return float("nan")
    ra, rb = rank_average(a), rank_average(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def pairwise_accuracy(chosen_scores: np.ndarray, rejected_scores: np.ndarray) -> float:
    """Fraction of pairs whose chosen state scores strictly above the rejected one."""
    c, r = np.asarray(chosen_scores), np.asarray(rejected_scores)
    return float(np.mean(c > r)) if len(c) else float("nan")


def best_of_n_accuracy(set_scores: Sequence[np.ndarray]) -> float:
    """Fraction of sets whose first entry (the good one) scores strictly above every other entry."""
    if not set_scores:
        return float("nan")
    return float(np.mean([bool(np.all(s[0] > s[1:])) for s in set_scores]))


# ---------------------------------------------------------------------------- oracle values
def oracle_value(env: gym.Env, start_distance: float | None = None) -> float | None:
    """The env's oracle value of its current state, or ``None`` where it has none.

    A :class:`~agentrm_gym.core.TextEnv` declares two oracle hooks: ``oracle_value()`` (in [0, 1]) or
    ``distance_to_goal()`` (Maze), which becomes ``1 - d / d0`` with ``d0`` the distance at reset
    (``start_distance``). Other envs have none.
    """
    base = env.unwrapped
    return oracle_value_of(base, start_distance) if isinstance(base, TextEnv) else None


def _start_distance(env: gym.Env) -> float | None:
    base = env.unwrapped
    dist = base.distance_to_goal() if isinstance(base, TextEnv) else None
    return None if dist is None else max(1.0, float(dist))


# ---------------------------------------------------------------------------- set building
@dataclass
class ComparisonSets:
    """Held-out comparisons for RM evaluation.

    Attributes:
        pairs: ``(chosen, rejected)`` states sharing a prefix.
        best_of_n: lists of final states, the good one first.
        valued: ``(state, oracle value)`` for Spearman (empty where the env has no oracle values).
        meta: env id, episodes, seed.
    """

    pairs: list[tuple[AgentState, AgentState]] = field(default_factory=list)
    best_of_n: list[list[AgentState]] = field(default_factory=list)
    valued: list[tuple[AgentState, float]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def _alternatives(base: TextEnv, best: str | None) -> list[str]:
    acts = base.admissible_actions() or []
    return [a for a in acts if a != best and a.strip().lower() != CHECK_VALID_ACTIONS]


def _advance(env: gym.Env, state: AgentState, action: str) -> tuple[AgentState, dict[str, Any], bool]:
    obs, reward, term, trunc, info = env.step(action)
    step = Step(action=action, observation=obs, reward=float(reward), progress=float(info["progress"]),
                action_valid=bool(info["action_valid"]))
    return state.extend(step), info, bool(term or trunc)


def build_comparison_sets(
    env: str | gym.Env,
    episodes: int = 10,
    seed: int = 0,
    split: str = "test",
    pairs_per_episode: int = 4,
    min_losers: int = 2,
    max_losers: int = 6,
    max_steps: int | None = None,
    progress_bar: bool = True,
) -> ComparisonSets:
    """Comparison sets from the oracle of ``env`` (an id or a made env) on ``episodes`` tasks of ``split``.

    Deterministic per ``seed``. Pairs whose rejected state the oracle values at least as high as the chosen
    one (a second shortest path in a maze) are dropped, as are Best-of-N losers whose final progress is not
    below the good trajectory's.
    """
    from agentrm_gym.registry import get_spec, make

    own = isinstance(env, str)
    env_id = env if isinstance(env, str) else (env.spec.id if env.spec else type(env.unwrapped).__name__)
    if isinstance(env, str):
        env = make(env, split=split)
    base = unwrap_text_env(env)
    limit = max_steps or (get_spec(base.task_name).max_steps if own or env.spec else 30)
    rng = np.random.default_rng([seed, 4242])
    ids = base.task_ids(split)
    sets = ComparisonSets(meta={"env": env_id, "episodes": episodes, "seed": seed, "split": split})
    try:
        for k in tqdm(range(episodes), desc="comparison sets", disable=not progress_bar, leave=False):
            task_id = ids[int(rng.integers(len(ids)))] if episodes > len(ids) else ids[(seed + k) % len(ids)]
            obs, info = env.reset(seed=seed + k, options={"task_id": task_id})
            d0 = _start_distance(env)
            state = AgentState(info["task"], info["goal"], obs, (), str(info["task_id"]))
            start_snap = base.snapshot()
            # 1. the oracle path, with pairs at sampled steps
            path: list[tuple[Any, AgentState]] = []
            done = False
            while not done and len(state.steps) < limit:
                best = base.expert_action()
                if best is None:
                    break
                path.append((base.snapshot(), state))
                v = oracle_value(env, d0)
                if v is not None:
                    sets.valued.append((state, v))
                state, info, done = _advance(env, state, best)
            v_end = oracle_value(env, d0)
            if v_end is not None:
                sets.valued.append((state, v_end))
            good, good_progress = state, float(info["progress"])
            if len(path) == 0:
                continue
            picks = rng.choice(len(path), size=min(pairs_per_episode, len(path)), replace=False)
            for i in sorted(int(p) for p in picks):
                snap, prefix = path[i]
                restore(env, snap)
                best = base.expert_action()
                alts = _alternatives(base, best)
                if best is None or not alts:
                    continue
                alt = alts[int(rng.integers(len(alts)))]
                rejected, _, _ = _advance(env, prefix, alt)
                v_rej = oracle_value(env, d0)
                restore(env, snap)
                chosen, _, _ = _advance(env, prefix, best)
                v_cho = oracle_value(env, d0)
                if v_rej is not None and v_cho is not None:
                    if v_rej >= v_cho:
                        continue
                    sets.valued.append((rejected, v_rej))
                sets.pairs.append((chosen, rejected))
            # 2. one Best-of-N set: the oracle trajectory against worse ones of the same length
            n_losers = int(rng.integers(min_losers, max_losers + 1))
            losers: list[AgentState] = []
            for _ in range(3 * n_losers):
                if len(losers) >= n_losers:
                    break
                branch = int(rng.integers(len(path)))
                snap, st = path[branch]
                restore(env, snap)
                alts = _alternatives(base, base.expert_action())
                if not alts:
                    continue
                st, info, done = _advance(env, st, alts[int(rng.integers(len(alts)))])
                while not done and len(st.steps) < len(good.steps):
                    acts = _alternatives(base, None)
                    if not acts:
                        break
                    st, info, done = _advance(env, st, acts[int(rng.integers(len(acts)))])
                if float(info["progress"]) < good_progress:
                    losers.append(st)
            if len(losers) >= min_losers:
                sets.best_of_n.append([good, *losers])
            restore(env, start_snap)
    finally:
        if own:
            env.close()
    return sets


def evaluate_rm(rm: Scorer, sets: ComparisonSets) -> dict[str, float]:
    """Pairwise accuracy, Best-of-N accuracy and Spearman with oracle values (NaN where not available)."""
    states: list[AgentState] = [s for pair in sets.pairs for s in pair]
    states += [s for group in sets.best_of_n for s in group]
    states += [s for s, _ in sets.valued]
    scores = np.asarray(rm(states), dtype=np.float64) if states else np.zeros(0)
    n_pairs = len(sets.pairs)
    pair_scores = scores[: 2 * n_pairs]
    pos = 2 * n_pairs
    bon = []
    for group in sets.best_of_n:
        bon.append(scores[pos : pos + len(group)])
        pos += len(group)
    valued = scores[pos:]
    return {
        "pairwise_accuracy": pairwise_accuracy(pair_scores[0::2], pair_scores[1::2]),
        "best_of_n_accuracy": best_of_n_accuracy(bon),
        "spearman": spearman(valued, [v for _, v in sets.valued]) if sets.valued else float("nan"),
        "pairs": n_pairs,
        "best_of_n_sets": len(sets.best_of_n),
        "valued_states": len(sets.valued),
    }


def oracle_value_samples(
    env: str | gym.Env, episodes: int = 50, epsilon: float = 0.3, seed: int = 0, split: str = "train",
    max_steps: int | None = None, task_ids: Sequence[str] | None = None, progress_bar: bool = True,
) -> list[tuple[AgentState, float]]:
    """``(state, oracle value)`` from epsilon-greedy oracle rollouts (random admissible action w.p. epsilon).

    Raises:
        ValueError: the env has no oracle values (:func:`oracle_value` gives ``None``).
    """
    from agentrm_gym.registry import get_spec, make

    own = isinstance(env, str)
    if isinstance(env, str):
        env = make(env, split=split)
    base = unwrap_text_env(env)
    limit = max_steps or get_spec(base.task_name).max_steps
    rng = np.random.default_rng([seed, 99])
    ids = list(task_ids) if task_ids else base.task_ids(split)
    out: list[tuple[AgentState, float]] = []
    try:
        for k in tqdm(range(episodes), desc="oracle rollouts", disable=not progress_bar, leave=False):
            obs, info = env.reset(seed=seed + k, options={"task_id": ids[int(rng.integers(len(ids)))]})
            d0 = _start_distance(env)
            state = AgentState(info["task"], info["goal"], obs, (), str(info["task_id"]))
            v = oracle_value(env, d0)
            if v is None:
                raise ValueError(f"{base.task_name} has no oracle values (no oracle_value()/distance_to_goal())")
            out.append((state, v))
            done = False
            while not done and len(state.steps) < limit:
                best = base.expert_action()
                acts = _alternatives(base, None)
                if best is None or (acts and rng.random() < epsilon):
                    if not acts:
                        break
                    best = acts[int(rng.integers(len(acts)))]
                state, info, done = _advance(env, state, best)
                out.append((state, float(oracle_value(env, d0))))
    finally:
        if own:
            env.close()
    return out
