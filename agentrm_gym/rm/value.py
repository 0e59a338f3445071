"""The explicit reward model: a value head regressed on (state, value) pairs (AgentRM's best RM).

Architecture: ``AutoModelForSequenceClassification`` with ``num_labels=1`` on any Hugging Face encoder or
decoder; the default backbone is the pretrained all-MiniLM-L6-v2, ``backbone="tiny"`` makes a 2-layer BERT
with a WordPiece tokenizer trained on the samples' texts. Loss: ``MSE(V(s), v)``.

Quick start::

    from agentrm_gym.rm import TrainConfig, train_value_rm
    rm = train_value_rm([(state, 0.7), ...], TrainConfig(epochs=3), backbone="tiny", out_dir="runs/rm")
    rm.score([state])            # np.ndarray of values
    rm = load_reward_model("runs/rm")
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentrm_gym.rm.backbones import (
    DEFAULT_BACKBONE,
    TINY_BACKBONE,
    encode_rm_inputs,
    load_value_backbone,
    require_torch,
    tiny_value_backbone,
)
from agentrm_gym.rm.base import RewardModel
from agentrm_gym.rm.format import RMFormat, split_rm_text
from agentrm_gym.rm.trainer import TrainConfig, fit, split_indices
from agentrm_gym.trajectory import AgentState, state_from_dict


class ValueRewardModel(RewardModel):
    """A sequence-classification model with one output, scoring ``header + history`` texts.

    Args:
        model: a ``*ForSequenceClassification`` with ``num_labels=1``.
        tokenizer: its tokenizer.
        fmt: the RM text format the model was trained with.
        max_length: input tokens; the history is truncated from the left, the header kept.
        batch_size: texts per forward pass.
        backbone: where the weights came from (for the card).
        meta: extra card fields (training data summary, metrics).
    """

    kind = "value"

    def __init__(
        self, model: Any, tokenizer: Any, fmt: RMFormat | None = None, max_length: int = 256,
        batch_size: int = 32, backbone: str = "", meta: dict[str, Any] | None = None, cache_size: int = 100_000,
    ):
        super().__init__(fmt=fmt, batch_size=batch_size, cache_size=cache_size)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.backbone = backbone
        self.meta = dict(meta or {})

    def encode(self, texts: Sequence[str]) -> dict[str, Any]:
        return encode_rm_inputs(self.tokenizer, [split_rm_text(t) for t in texts], self.max_length)

    def forward_texts(self, model: Any, texts: Sequence[str]) -> Any:
        """Differentiable values of texts (used by the trainers)."""
        enc = self.encode(texts)
        return model(**enc).logits[:, 0]

    def _score_texts(self, texts: list[str]) -> np.ndarray:
        torch = require_torch()
        self.stats.forward_calls += 1
        with torch.inference_mode():
            return self.forward_texts(self.model, texts).float().cpu().numpy().astype(np.float64)

    def card(self) -> dict[str, Any]:
        return {**super().card(), "backbone": self.backbone, "max_length": self.max_length, **self.meta}

    def save(self, path: str | Path) -> Path:
        """Write the HF directory (weights, config, tokenizer) and the JSON card."""
        from agentrm_gym.rm.card import write_card

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        write_card(path, self.card())
        return path

    @classmethod
    def load(cls, path: str | Path, card: dict[str, Any], fmt: RMFormat, meta: dict[str, Any],
             **overrides: Any) -> ValueRewardModel:
        """Rebuild from a directory written by :meth:`save` (``load_reward_model`` calls this)."""
        from agentrm_gym.rm.card import load_model_dir

        model, tok, kwargs = load_model_dir(path, card, meta, "AutoModelForSequenceClassification", 256, pad_model=True)
        return cls(model, tok, fmt, **{**kwargs, **overrides})


def as_value_samples(samples: Iterable[Any]) -> list[tuple[AgentState, float]]:
    """Accept ``(AgentState, value)`` tuples or ``{"state": {...}, "value": v}`` dicts."""
    out = []
    for s in samples:
        if isinstance(s, dict):
            st = s["state"]
            if isinstance(st, dict):
                st = state_from_dict(st)
            out.append((st, float(s["value"])))
        else:
            st, v = s
            out.append((st, float(v)))
    return out


def build_value_model(
    backbone: str, texts: Sequence[str], fmt: RMFormat, max_length: int, seed: int,
    tiny_kwargs: dict[str, Any] | None = None, resume_dir: str | Path | None = None,
) -> tuple[ValueRewardModel, bool]:
    """A fresh :class:`ValueRewardModel` on ``backbone``; returns ``(rm, from_scratch)``.

    With ``resume_dir`` holding a trainer checkpoint, the model and tokenizer come from it instead (a
    from-scratch tokenizer must keep the vocabulary it was trained with).
    """
    ckpt = Path(resume_dir) / "checkpoint" if resume_dir else None
    if ckpt is not None and (ckpt / "trainer_state.pt").exists():
        from agentrm_gym.rm.card import load_tokenizer

        model, tok = load_value_backbone(str(ckpt))
        tok = load_tokenizer(ckpt)
        name = "tiny-bert" if backbone == TINY_BACKBONE else (
            "all-MiniLM-L6-v2" if backbone == DEFAULT_BACKBONE else str(backbone))
        return ValueRewardModel(model, tok, fmt, max_length, backbone=name), backbone == TINY_BACKBONE
    if backbone == TINY_BACKBONE:
        model, tok = tiny_value_backbone(texts, seed=seed, max_position=max(512, max_length), **(tiny_kwargs or {}))
        return ValueRewardModel(model, tok, fmt, max_length, backbone="tiny-bert"), True
    require_torch().manual_seed(seed)
    model, tok = load_value_backbone(backbone)
    name = "all-MiniLM-L6-v2" if backbone == DEFAULT_BACKBONE else str(backbone)
    return ValueRewardModel(model, tok, fmt, max_length, backbone=name), False


def train_value_rm(
    samples: Iterable[Any],
    config: TrainConfig | None = None,
    *,
    backbone: str = DEFAULT_BACKBONE,
    out_dir: str | Path = "runs/value_rm",
    fmt: RMFormat | None = None,
    tiny_kwargs: dict[str, Any] | None = None,
    log_dir: str | Path | None = None,
    **overrides: Any,
) -> ValueRewardModel:
    """Train an explicit RM by MSE on (state, value) pairs; save it (HF dir + card) in ``out_dir``.

    TensorBoard scalars in ``log_dir`` (default ``out_dir``): ``losses/rm_mse`` (train batches),
    ``rm/val_loss`` (validation MSE), ``rm/val_spearman``. A rerun with ``resume=True`` continues from ``out_dir/checkpoint``.

    Args:
        samples: ``(AgentState, value)`` tuples or ``{"state", "value"}`` dicts.
        config: the hyperparameters (default ``TrainConfig()``); ``overrides`` change single fields
            (``epochs=1, batch_size=32``).
        backbone: ``"minilm"`` (default, pretrained), ``"tiny"`` (from scratch) or a model directory.
        fmt: the RM text format (drop thoughts / observations).
        tiny_kwargs: ``hidden_size``, ``num_layers``, ``vocab_size`` ... of the tiny backbone.
        log_dir: the TensorBoard directory (default ``out_dir``; the pipeline's is ``RUN/tb/rm``).

    Returns:
        The trained model with the best validation weights, also saved in ``out_dir``.
    """
    torch = require_torch()
    from agentrm_gym.rm.metrics import spearman

    data = as_value_samples(samples)
    if len(data) < 2:
        raise ValueError(f"train_value_rm needs at least 2 samples, got {len(data)}")
    cfg = TrainConfig.build(config, **overrides)
    fmt = fmt or RMFormat()
    texts = [fmt.text(s) for s, _ in data]
    values = np.array([v for _, v in data], dtype=np.float32)
    train_idx, val_idx = split_indices(len(data), cfg.val_fraction, cfg.seed)
    rm, scratch = build_value_model(backbone, [texts[i] for i in train_idx], fmt, cfg.max_length, cfg.seed,
                                    tiny_kwargs, resume_dir=out_dir if cfg.resume else None)

    def batch_loss(model: Any, idx: Sequence[int]) -> Any:
        pred = rm.forward_texts(model, [texts[train_idx[i]] for i in idx])
        target = torch.tensor(values[train_idx[list(idx)]])
        return torch.nn.functional.mse_loss(pred, target)

    def validate(model: Any) -> dict[str, float]:
        preds = []
        with torch.inference_mode():
            for start in range(0, len(val_idx), 64):
                chunk = val_idx[start : start + 64]
                preds.append(rm.forward_texts(model, [texts[i] for i in chunk]).float().numpy())
        p = np.concatenate(preds)
        return {"loss": float(np.mean((p - values[val_idx]) ** 2)), "spearman": spearman(p, values[val_idx])}

    rm.model, summary = fit(
        rm.model, rm.tokenizer, len(train_idx), batch_loss, validate if len(val_idx) else None, out_dir, cfg,
        "losses/rm_mse", default_lr=1e-3 if scratch else 5e-5, desc="train value RM", log_dir=log_dir,
    )
    rm.model.eval()
    rm.clear_cache()
    rm.meta = {
        "objective": "mse",
        "training": {"samples": len(data), "train": len(train_idx), "val": len(val_idx),
                     "tasks": sorted({s.task for s, _ in data}), "value_mean": float(values.mean()),
                     "value_std": float(values.std())},
        "metrics": {k: summary[k] for k in ("best_val_loss", "steps", "epochs_run", "train_seconds")}
        | _best_record(summary["history"]),
        "train_config": cfg.__dict__ | {"lr": summary["lr"]},
    }
    rm.save(out_dir)
    return rm


def _best_record(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Validation metrics of the epoch whose weights were kept (the lowest validation loss)."""
    scored = [h for h in history if "val_loss" in h]
    if not scored:
        return {}
    best = min(scored, key=lambda h: h["val_loss"])
    return {"val_spearman": best.get("val_spearman"), "best_epoch": best["epoch"]}
