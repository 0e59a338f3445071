"""Pairwise (Bradley-Terry) training of the value-model architecture on preference pairs.

Loss, with margin ``m`` and label smoothing ``eps`` (Secrets of RLHF II, arXiv 2401.06080)::

    d = r(chosen) - r(rejected) - m
    L = -(1 - eps) * log sigmoid(d) - eps * log sigmoid(-d)

The result is a :class:`~agentrm_gym.rm.value.ValueRewardModel` (card ``objective: bradley-terry``), so it
scores, saves and loads like the explicit RM. TensorBoard: ``losses/rm_bt``, ``rm/val_loss``,
``rm/val_pairwise_accuracy``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.rm.backbones import DEFAULT_BACKBONE, require_torch
from agentrm_gym.rm.format import RMFormat
from agentrm_gym.rm.trainer import PairwiseConfig, fit, split_indices
from agentrm_gym.rm.value import ValueRewardModel, build_value_model
from agentrm_gym.trajectory import AgentState


def bradley_terry_loss(chosen: Any, rejected: Any, margin: float = 0.0, label_smoothing: float = 0.0) -> Any:
    """Mean of ``-(1-eps) log sigmoid(d) - eps log sigmoid(-d)`` with ``d = chosen - rejected - margin``."""
    torch = require_torch()
    d = chosen - rejected - margin
    logsig = torch.nn.functional.logsigmoid
    return (-(1.0 - label_smoothing) * logsig(d) - label_smoothing * logsig(-d)).mean()


def train_pairwise_rm(
    pairs: Iterable[tuple[AgentState, AgentState]],
    config: PairwiseConfig | None = None,
    *,
    backbone: str = DEFAULT_BACKBONE,
    out_dir: str | Path = "runs/pairwise_rm",
    fmt: RMFormat | None = None,
    tiny_kwargs: dict[str, Any] | None = None,
    log_dir: str | Path | None = None,
    **overrides: Any,
) -> ValueRewardModel:
    """Train a reward model on ``(chosen, rejected)`` state pairs with the Bradley-Terry loss.

    Arguments as :func:`~agentrm_gym.rm.value.train_value_rm`; the config is a :class:`PairwiseConfig`
    (``margin`` and ``label_smoothing`` besides the :class:`TrainConfig` fields).
    """
    torch = require_torch()
    data = list(pairs)
    if len(data) < 2:
        raise ValueError(f"train_pairwise_rm needs at least 2 pairs, got {len(data)}")
    cfg = PairwiseConfig.build(config, **overrides)
    margin, label_smoothing = cfg.margin, cfg.label_smoothing
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    fmt = fmt or RMFormat()
    chosen = [fmt.text(c) for c, _ in data]
    rejected = [fmt.text(r) for _, r in data]
    train_idx, val_idx = split_indices(len(data), cfg.val_fraction, cfg.seed)
    rm, scratch = build_value_model(
        backbone, [chosen[i] for i in train_idx] + [rejected[i] for i in train_idx], fmt, cfg.max_length, cfg.seed,
        tiny_kwargs, resume_dir=out_dir if cfg.resume else None,
    )

    def pair_scores(model: Any, idx: Sequence[int]) -> tuple[Any, Any]:
        both = rm.forward_texts(model, [chosen[i] for i in idx] + [rejected[i] for i in idx])
        return both[: len(idx)], both[len(idx) :]

    def batch_loss(model: Any, idx: Sequence[int]) -> Any:
        c, r = pair_scores(model, [int(train_idx[i]) for i in idx])
        return bradley_terry_loss(c, r, margin, label_smoothing)

    def validate(model: Any) -> dict[str, float]:
        losses, correct = [], []
        with torch.inference_mode():
            for start in range(0, len(val_idx), 32):
                c, r = pair_scores(model, [int(i) for i in val_idx[start : start + 32]])
                losses.append(float(bradley_terry_loss(c, r, margin, label_smoothing)) * len(c))
                correct.extend((c > r).tolist())
        return {"loss": sum(losses) / len(val_idx), "pairwise_accuracy": float(np.mean(correct))}

    rm.model, summary = fit(
        rm.model, rm.tokenizer, len(train_idx), batch_loss, validate if len(val_idx) else None, out_dir, cfg,
        "losses/rm_bt", default_lr=1e-3 if scratch else 5e-5, desc="train pairwise RM", log_dir=log_dir,
    )
    rm.clear_cache()
    rm.meta = {
        "objective": "bradley-terry", "margin": margin, "label_smoothing": label_smoothing,
        "training": {"pairs": len(data), "train": len(train_idx), "val": len(val_idx),
                     "tasks": sorted({c.task for c, _ in data})},
        "metrics": {k: summary[k] for k in ("best_val_loss", "steps", "epochs_run", "train_seconds")},
        "train_config": cfg.__dict__ | {"lr": summary["lr"]},
    }
    rm.save(out_dir)
    return rm
