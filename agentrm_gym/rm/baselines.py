"""The baselines a learned RM is read against, fitted on its own training pairs (issue 21).

A pooled RM (:mod:`agentrm_gym.rm.pooled`) is a frozen encoder's embedding plus four hand-written trajectory
statistics under a ridge head. Its Best-of-N gain means little until it is set beside what its parts do alone
and beside the simplest selector, on the very same candidates:

* ``heuristic`` - "fewer repeated actions" (:class:`agentrm_gym.rm.heuristic.FewerRepeatsRewardModel`):
  nothing learned;
* ``stats-only`` - :class:`StatsRewardModel`, the ridge on the four statistics alone;
* ``encoder-only`` - the chosen encoder's embedding alone under a ridge head;
* ``ridge`` - the pooled RM's own value, when its selector ranks by the heuristic first
  (:mod:`agentrm_gym.rm.selector`): what the learned value does without the heuristic.

:func:`fit_baselines` fits the last two exactly as :func:`agentrm_gym.rm.pooled.train_pooled_rm` fits its
candidates (group-centred targets, the same folds and alphas, leave-one-task-out CV on held-in train pairs)
and reports the heuristic's ranking figures on the same pairs; ``train_pooled_rm`` saves them in
``<rm>/baselines.json`` and their figures in the card's ``metrics.baselines``. :func:`load_baseline` makes each
a reward model, so the evaluate stage re-scores the saved Best-of-N candidates with it (``eval_rms``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.rm.base import RewardModel
from agentrm_gym.rm.card import RMLoadError
from agentrm_gym.rm.format import RMFormat
from agentrm_gym.rm.pooled import (
    STAT_NAMES,
    PooledConfig,
    PooledValueRewardModel,
    centre_by_group,
    cross_validate_ridge,
    cv_folds,
    fit_ridge,
    group_ranking_metrics,
    text_stats,
)

#: The baseline heads beside a pooled RM (:func:`train_pooled_rm` writes them; :func:`load_baseline` reads them).
BASELINES_NAME = "baselines.json"
#: What a learned RM is read against (Table 1's ``bon:N (<name>)`` rows with ``eval_rms``): the "fewer
#: repeated actions" heuristic, the ridge on the four statistics alone, the chosen encoder alone, and the
#: RM's value alone (``ridge``: the same head, nothing fitted; :func:`fit_baselines` fits the others).
BASELINES = ("heuristic", "stats-only", "encoder-only", "ridge")


class StatsRewardModel(RewardModel):
    """``V(s) = w . text_stats(text(s)) + b``: the statistics-only baseline of the pooled RM (no encoder).

    Fitted as the pooled RM's head is (ridge on group-centred values, alpha by the same CV) on the same
    pairs, so what the pooled RM gains over it is what its encoder adds.
    """

    kind = "stats_value"

    def __init__(self, weights: Sequence[float] | np.ndarray, bias: float = 0.0, fmt: RMFormat | None = None,
                 meta: dict[str, Any] | None = None):
        super().__init__(fmt=fmt or RMFormat(style="compact"))
        self.weights = np.asarray(weights, dtype=np.float64).reshape(len(STAT_NAMES))
        self.bias = float(bias)
        self.meta = dict(meta or {})

    def _score_texts(self, texts: list[str]) -> np.ndarray:
        self.stats.forward_calls += 1
        return stats_matrix(texts, self.fmt) @ self.weights + self.bias

    def card(self) -> dict[str, Any]:
        return {**super().card(), "stats": list(STAT_NAMES), **self.meta}


def stats_matrix(texts: Sequence[str], fmt: RMFormat) -> np.ndarray:
    """:func:`text_stats` of every text, one row each."""
    if not texts:
        return np.zeros((0, len(STAT_NAMES)))
    return np.stack([text_stats(t, fmt.obs_chars) for t in texts])


def baseline_summary(entry: dict[str, Any]) -> dict[str, Any]:
    """The card's figures of a baseline (no head weights)."""
    m = entry["metrics"]
    return {"alpha": entry.get("alpha"), "task_pairwise_accuracy": m["task_pairwise_accuracy"],
            "pairwise_accuracy": m["pairwise_accuracy"], "bon_lift": m["bon_lift"],
            "per_task": {t: c["pairwise_accuracy"] for t, c in m["per_task"].items()}}


def fit_baselines(records: list[dict[str, Any]], texts: Sequence[str], embeddings: np.ndarray | None,
                  cfg: PooledConfig, fmt: RMFormat) -> dict[str, dict[str, Any]]:
    """The baselines on the RM's own training pairs, folds and alphas (:data:`BASELINES`).

    ``stats-only`` (a ridge on :func:`stats_matrix`) and ``encoder-only`` (a ridge on ``embeddings``, when
    given) are cross-validated exactly as :func:`train_pooled_rm` validates its candidates, then fitted on
    every pair: ``{"alpha", "weights", "bias", "metrics"}``. ``heuristic`` fits nothing, so its
    ``metrics`` (within-group ranking of ``-repeated_actions``) are over every pair, the same as CV.
    """
    from agentrm_gym.rm.heuristic import FewerRepeatsRewardModel

    values = np.array([r["value"] for r in records])
    groups = [r["group"] for r in records]
    tasks = [r["task"] for r in records]
    y = centre_by_group(values, groups) if cfg.target == "centred" else values
    folds = cv_folds(records, sorted({(r["task"], r["task_id"]) for r in records}), cfg)
    heuristic = FewerRepeatsRewardModel().score([r["state"] for r in records])
    out: dict[str, dict[str, Any]] = {
        "heuristic": {"alpha": None, "metrics": group_ranking_metrics(heuristic, values, groups, tasks)}}
    for name, x in (("stats-only", stats_matrix(texts, fmt)), ("encoder-only", embeddings)):
        if x is None:
            continue
        cv, alpha = cross_validate_ridge(x, y, folds, cfg.alphas, values, groups, tasks)
        w, b = fit_ridge(x, y, alpha)
        out[name] = {"alpha": alpha, "weights": w.tolist(), "bias": b, "metrics": cv[alpha]}
    return out


def load_baseline(name: str, rm_dir: str | Path, explicit: Any = None) -> Any:
    """A baseline of :data:`BASELINES` as a reward model, from ``rm_dir``'s :data:`BASELINES_NAME`.

    ``encoder-only`` reuses the encoder of ``explicit`` (the pooled RM of ``rm_dir``) with its own head.

    Raises:
        RMLoadError: no such baseline in ``rm_dir`` (an RM trained before baselines were saved, or not pooled).
    """
    from agentrm_gym.rm.heuristic import FewerRepeatsRewardModel

    if name == "heuristic":
        return FewerRepeatsRewardModel()
    if name == "ridge":
        if not isinstance(explicit, PooledValueRewardModel):
            raise RMLoadError(f"baseline 'ridge' needs the pooled RM of {rm_dir}")
        return PooledValueRewardModel(explicit.encoder, explicit.tokenizer, explicit.weights, explicit.bias,
                                      explicit.fmt, explicit.max_length, explicit.batch_size,
                                      backbone=explicit.backbone, meta={"baseline": "ridge"},
                                      stats=explicit.use_stats)
    path = Path(rm_dir) / BASELINES_NAME
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))[name]
        weights, bias = np.asarray(entry["weights"], dtype=np.float64), float(entry["bias"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RMLoadError(f"{path}: no {name!r} baseline ({type(exc).__name__}: {exc}); retrain the RM "
                          "(rm_kind=pooled)") from exc
    meta = {"baseline": name, "alpha": entry.get("alpha")}
    fmt = explicit.fmt if explicit is not None else None
    if name == "stats-only":
        return StatsRewardModel(weights, bias, fmt, meta=meta)
    if name == "encoder-only" and isinstance(explicit, PooledValueRewardModel):
        return PooledValueRewardModel(explicit.encoder, explicit.tokenizer, weights, bias, explicit.fmt,
                                      explicit.max_length, explicit.batch_size, backbone=explicit.backbone,
                                      meta=meta, stats=False)
    raise RMLoadError(f"baseline {name!r} needs the pooled RM of {rm_dir} (known: {', '.join(BASELINES)})")
