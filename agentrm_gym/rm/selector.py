"""How a pooled RM turns its value into a ranking: its own order, or the heuristic's with the RM breaking ties.

"Fewer repeated actions" (:mod:`agentrm_gym.rm.heuristic`) is a strong selector, and a learned value that
transfers to a task it never saw ranks within a group about as well, but not always the same candidates.
Its ties are where the heuristic knows nothing: most Best-of-N groups hold several candidates without a
repeat. The ``heuristic-ties`` selector ranks by ``-repeats(s)`` first and by the RM's value within a
repeat count:

``score(s) = -repeats(s) + 1/2 + 0.49 tanh((V(s) - c) / d)``

(``c``, ``d``: the mean and standard deviation of V on the training states; the second part stays in (0, 1),
so it orders states only within one repeat count, and it is a function of the state alone, so the score
cache, beam search and a served RM stay exact).

:func:`choose_selector` picks between ``ridge`` (V itself) and ``heuristic-ties`` on held-in TRAIN data
only: on the held-out folds of the RM's own cross-validation, each one's pick in every sampled group (the
final states Best-of-N ranks) minus the heuristic's pick, with a 95% bootstrap CI over groups; the selector
with the higher lower bound wins (ties: ``ridge``). What the learned part adds is then measured against
the heuristic before any test id is read.

Those folds leave a whole task out: they say how the value ranks a task the RM never saw. On its own
training tasks the RM ranks from in-task data, and there the answer can differ (on the demo run the value
beats the heuristic within the held-in tasks, +1.8 points [+0.4, +3.3], and not across them), so
:func:`agentrm_gym.rm.pooled.train_pooled_rm` runs :func:`choose_selector` a second time on task-id folds
within the training tasks and keeps that choice for their states (``PooledValueRewardModel.seen``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: The selectors of a pooled RM (``PooledConfig.selector`` adds ``auto``).
SELECTORS = ("ridge", "heuristic-ties")


def heuristic_ties(values: np.ndarray, repeats: np.ndarray, center: float, scale: float) -> np.ndarray:
    """``-repeats + 1/2 + 0.49 tanh((values - center) / scale)`` (module docstring)."""
    return -np.asarray(repeats, dtype=np.float64) + 0.5 + 0.49 * np.tanh(
        (np.asarray(values, dtype=np.float64) - center) / max(scale, 1e-12))


def _tops(scores: np.ndarray) -> np.ndarray:
    """The indices of the highest scores (all of them when tied)."""
    return np.flatnonzero(np.isclose(scores, scores.max(), rtol=0.0, atol=1e-12))


def _pick(scores: np.ndarray, members: list[int], values: np.ndarray) -> float:
    """The value of the top-scored member; tied tops share the pick (as Table 1 averages ties)."""
    return float(values[members][_tops(scores[members])].mean())


def pick_differences(scores: np.ndarray, repeats: np.ndarray, values: np.ndarray,
                     groups: list[list[int]]) -> np.ndarray:
    """Per group, the value of ``scores``' pick minus the value of the heuristic's pick (ties share a pick)."""
    heuristic = -np.asarray(repeats, dtype=np.float64)
    return np.array([_pick(scores, m, values) - _pick(heuristic, m, values) for m in groups])


def room_over_heuristic(scores: np.ndarray, repeats: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Where one group's room above the heuristic lies, and where a selector gains or loses it.

    Returns ``tied`` (1 when the heuristic's pick is shared), ``heuristic`` (its pick's value, ties averaged),
    ``oracle`` (the best value), ``in_ties`` (the best among the heuristic's ties minus its pick: what a
    tie-breaker can reach), ``outside`` (the rest of the oracle's room: only overruling the heuristic reaches it),
    and the selector's pick (``scores``' tied tops averaged) minus the heuristic's, split into ``from_ties`` (its
    tops with the fewest repeats) and ``from_overruling`` (its tops with more), weighted by their share; and
    ``tie_pairs``, ``tie_correct``: the pairs of the heuristic's ties with different values, and how many of them
    ``scores`` orders right (a tie counts half)."""
    scores, repeats, values = (np.asarray(x, dtype=np.float64) for x in (scores, repeats, values))
    ties = np.flatnonzero(repeats == repeats.min())
    heuristic = float(values[ties].mean())
    top = _tops(scores)
    inside = np.isin(top, ties)
    share = [float(inside.mean()), float(1 - inside.mean())]
    parts = [share[k] * (float(values[top[m]].mean()) - heuristic) if m.any() else 0.0
             for k, m in enumerate((inside, ~inside))]
    better = values[ties][:, None] > values[ties][None, :]
    order = np.sign(scores[ties][:, None] - scores[ties][None, :])
    return {"tied": float(len(ties) > 1), "heuristic": heuristic, "oracle": float(values.max()),
            "in_ties": float(values[ties].max()) - heuristic, "outside": float(values.max() - values[ties].max()),
            "from_ties": parts[0], "from_overruling": parts[1], "tie_pairs": float(better.sum()),
            "tie_correct": float(((order[better] + 1) / 2).sum())}


def gain_over_heuristic(scores: np.ndarray, repeats: np.ndarray, values: np.ndarray, groups: list[list[int]],
                        seed: int = 0, resamples: int = 2000) -> dict[str, Any]:
    """Mean over ``groups`` of :func:`pick_differences`, with a 95% bootstrap CI."""
    diffs = pick_differences(scores, repeats, values, groups)
    if not len(diffs):
        return {"mean": None, "ci": [None, None], "groups": 0}
    boot = np.random.default_rng(seed).integers(0, len(diffs), size=(resamples, len(diffs)))
    lo, hi = np.percentile(diffs[boot].mean(axis=1), [2.5, 97.5])
    return {"mean": float(diffs.mean()), "ci": [float(lo), float(hi)], "groups": len(diffs)}


def final_groups(groups: Sequence[Any], sources: Sequence[str]) -> list[list[int]]:
    """The indices of each sampled group's final states (source ``"group"``), groups of two or more, in order of
    first appearance; where no state is a group's final state, every group's states."""
    finals = [s == "group" for s in sources]
    index: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        if finals[i] or not any(finals):
            index.setdefault(g, []).append(i)
    return [m for m in index.values() if len(m) >= 2]


def choose_selector(predictions: np.ndarray, repeats: np.ndarray, values: np.ndarray, groups: Sequence[Any],
                    sources: Sequence[str], requested: str = "auto", seed: int = 0) -> dict[str, Any]:
    """The selector of a pooled RM from its cross-validated ``predictions`` (module docstring).

    Args:
        predictions: the RM's values of the training states, each predicted by a head that did not see its fold.
        repeats: the states' repeated-action counts.
        values, groups, sources: the states' labels, groups and sources (``"group"``: a sampled group's final
            states; when none is, every group counts).
        requested: ``auto`` (choose) or one of :data:`SELECTORS` (report both, keep it).

    Returns:
        ``{"chosen", "center", "scale", "ridge": gain, "heuristic-ties": gain}`` with each gain of
        :func:`gain_over_heuristic`.
    """
    if requested not in ("auto", *SELECTORS):
        raise ValueError(f"selector must be auto or one of {', '.join(SELECTORS)}, got {requested!r}")
    members = final_groups(groups, sources)
    center, scale = float(np.mean(predictions)), float(np.std(predictions) or 1.0)
    gains = {"ridge": gain_over_heuristic(predictions, repeats, values, members, seed),
             "heuristic-ties": gain_over_heuristic(heuristic_ties(predictions, repeats, center, scale), repeats,
                                                   values, members, seed)}
    chosen = requested
    if requested == "auto":
        low = {k: (g["ci"][0] if g["ci"][0] is not None else -np.inf) for k, g in gains.items()}
        chosen = "heuristic-ties" if low["heuristic-ties"] > low["ridge"] else "ridge"
    return {"chosen": chosen, "center": center, "scale": scale, **gains}
