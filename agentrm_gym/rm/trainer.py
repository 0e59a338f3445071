"""RM training configs and the loop shared by the value (MSE), pairwise (Bradley-Terry) and implicit RMs.

Config/trainer pairs, as TRL has them: :class:`TrainConfig` (value RM), :class:`PairwiseConfig` and
:class:`ImplicitConfig` hold the hyperparameters; each trainer (``train_value_rm``, ``train_pairwise_rm``,
``train_implicit_rm``) takes one of them (plus field overrides as keywords) and calls :func:`fit`.

One loop, two losses: it splits off a validation set, shuffles deterministically per (seed, epoch), logs
to TensorBoard in ``log_dir`` (default ``out_dir``; CleanRL-style namespaced scalars), saves a resumable
checkpoint every ``checkpoint_every`` optimizer steps and at every epoch's end (model, tokenizer, optimizer,
torch's random generator, position in the epoch; written to a temporary directory and renamed, so an
interrupted save never corrupts the previous one), keeps the best validation model in ``out_dir/best`` and
stops early after ``patience`` epochs without improvement. A resumed run trains exactly as the
uninterrupted one would (same weights, byte for byte, on CPU).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from agentrm_gym.files import kill_point
from agentrm_gym.rm.backbones import require_torch, training_threads
from agentrm_gym.tblog import summary_writer

CHECKPOINT_DIR = "checkpoint"
BEST_DIR = "best"
TRAINER_STATE = "trainer_state.pt"


@dataclass
class TrainConfig:
    """Hyperparameters of RM training (the same fields feed the CLI).

    Attributes:
        epochs: passes over the training split.
        lr: AdamW learning rate (``None``: 1e-3 for from-scratch backbones, 5e-5 for pretrained ones).
        batch_size: examples per optimizer step.
        val_fraction: share of the examples held out for validation and early stopping.
        patience: epochs without a better validation loss before stopping (0 disables early stop).
        seed: seeds the split, the shuffles and the head initialisation.
        max_length: RM input tokens (the header is kept, the history truncated from the left).
        checkpoint_every: optimizer steps between resumable checkpoints.
        weight_decay: AdamW weight decay.
        grad_clip: max gradient norm.
        resume: continue from ``out_dir/checkpoint`` when it exists.
    """

    epochs: int = 3
    lr: float | None = None
    batch_size: int = 16
    val_fraction: float = 0.1
    patience: int = 2
    seed: int = 0
    max_length: int = 256
    checkpoint_every: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    resume: bool = True

    @classmethod
    def build(cls, config: TrainConfig | None = None, **overrides: Any) -> Any:
        """``config`` (default ``cls()``) with ``overrides`` applied; unknown field names raise ``TypeError``.

        A config of a parent class is widened to ``cls`` (the extra fields keep their defaults).
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
        if config is None:
            config = cls()
        elif not isinstance(config, cls):
            if not isinstance(config, TrainConfig):
                raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}")
            config = cls(**{f.name: getattr(config, f.name) for f in fields(config) if f.name in names})
        return replace(config, **overrides) if overrides else config


@dataclass
class PairwiseConfig(TrainConfig):
    """:class:`TrainConfig` plus the Bradley-Terry loss's ``margin`` and ``label_smoothing`` (in [0, 0.5))."""

    margin: float = 0.0
    label_smoothing: float = 0.0


@dataclass
class ImplicitConfig(TrainConfig):
    """:class:`TrainConfig` for the implicit RM: the ``loss`` (``"ce"`` or ``"mse"`` on outcome labels, ``"bt"``
    within groups; ``bt`` takes a ``label_smoothing`` in [0, 0.5) and an adaptive ``margin``: ``margin`` times
    the pair's outcome difference), ``beta`` and ``aggregate`` of the RM, and its own defaults (lr 1e-4,
    batch 8, 512 tokens)."""

    lr: float | None = 1e-4
    batch_size: int = 8
    max_length: int = 512
    loss: str = "ce"
    beta: float = 0.05
    aggregate: str = "sum"
    margin: float = 0.0
    label_smoothing: float = 0.0


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic ``(train, val)`` index split; no validation set below 5 examples."""
    order = np.random.default_rng([seed, 7919]).permutation(n)
    n_val = int(round(n * val_fraction)) if n >= 5 and val_fraction > 0 else 0
    n_val = min(max(n_val, 1 if val_fraction > 0 and n >= 5 else 0), n - 1) if n > 1 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _save_checkpoint(out_dir: Path, model: Any, tokenizer: Any, state: dict[str, Any], optimizer: Any) -> None:
    torch = require_torch()
    tmp = out_dir / (CHECKPOINT_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    # torch's generator too: dropout draws from it, so a resumed run without it trains on other masks
    torch.save({"state": state, "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()},
               tmp / TRAINER_STATE)
    final = out_dir / CHECKPOINT_DIR
    old = out_dir / (CHECKPOINT_DIR + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    kill_point("checkpoint")  # no checkpoint under its final name: a resume takes checkpoint.old
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _save_best(out_dir: Path, model: Any, tokenizer: Any) -> None:
    tmp = out_dir / (BEST_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir / BEST_DIR, ignore_errors=True)
    tmp.rename(out_dir / BEST_DIR)


def fit(
    model: Any,
    tokenizer: Any,
    n_train: int,
    batch_loss: Callable[[Any, Sequence[int]], Any],
    validate: Callable[[Any], dict[str, float]] | None,
    out_dir: str | Path,
    cfg: TrainConfig,
    loss_tag: str,
    default_lr: float,
    desc: str = "train RM",
    log_dir: str | Path | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train ``model`` and return ``(model with the best weights, summary)``.

    Args:
        batch_loss: ``(model, train indices) -> scalar loss tensor``.
        validate: ``model -> metrics`` with a ``"loss"`` key (lower is better), or ``None``.
        loss_tag: TensorBoard name of the training loss, e.g. ``losses/rm_mse``.
        log_dir: the TensorBoard directory (default ``out_dir``; a pipeline run passes ``RUN/tb/<stage>``).
    """
    torch = require_torch()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    lr = cfg.lr if cfg.lr is not None else default_lr
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(n_train / cfg.batch_size))
    state: dict[str, Any] = {
        "epoch": 0, "batch": 0, "global_step": 0, "best_val": None, "bad_epochs": 0, "finished": False, "early_stopped": False,
        "history": [], "config": asdict(cfg),
    }
    ckpt = out / CHECKPOINT_DIR
    old = out / (CHECKPOINT_DIR + ".old")
    if cfg.resume and not ckpt.exists() and (old / TRAINER_STATE).exists():
        old.rename(ckpt)  # killed while a new checkpoint replaced it: the previous one is whole
    if cfg.resume and (ckpt / TRAINER_STATE).exists():
        saved = torch.load(ckpt / TRAINER_STATE, map_location="cpu", weights_only=False)
        from safetensors.torch import load_file

        weights = ckpt / "model.safetensors"
        model.load_state_dict(load_file(str(weights)), strict=False)
        optimizer.load_state_dict(saved["optimizer"])
        if "torch_rng" in saved:  # checkpoints written before it was saved resume on the seed's generator
            torch.set_rng_state(saved["torch_rng"])
        state.update(saved["state"])
        # a finished run asked for more epochs continues, unless it had stopped early
        state["finished"] = bool(state.get("early_stopped")) or state["epoch"] >= cfg.epochs
    writer = summary_writer(log_dir if log_dir is not None else out)  # None without tensorboard
    if writer is not None and state["global_step"] == 0:
        writer.add_text("hyperparameters", json.dumps({**asdict(cfg), "lr": lr}, indent=1))
    total = cfg.epochs * steps_per_epoch
    bar = tqdm(total=total, initial=min(state["global_step"], total), desc=desc, unit="step", leave=False)
    t0 = time.time()
    with training_threads():  # the weights of a seed, whatever the threads setting
        try:
            while not state["finished"] and state["epoch"] < cfg.epochs:
                epoch = state["epoch"]
                order = np.random.default_rng([cfg.seed, epoch]).permutation(n_train)
                model.train()
                for b in range(state["batch"], steps_per_epoch):
                    idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                    loss = batch_loss(model, [int(i) for i in idx])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    optimizer.step()
                    state["global_step"] += 1
                    kill_point("train-step")
                    state["batch"] = b + 1
                    if writer is not None:
                        writer.add_scalar(loss_tag, float(loss.detach()), state["global_step"])
                    bar.update(1)
                    bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
                    if cfg.checkpoint_every and state["global_step"] % cfg.checkpoint_every == 0:
                        _save_checkpoint(out, model, tokenizer, state, optimizer)
                state["epoch"] = epoch + 1
                state["batch"] = 0
                record: dict[str, Any] = {"epoch": epoch + 1, "step": state["global_step"]}
                if validate is not None:
                    model.eval()
                    metrics = validate(model)
                    record.update({f"val_{k}": v for k, v in metrics.items()})
                    for k, v in metrics.items():
                        if writer is not None and not (isinstance(v, float) and math.isnan(v)):
                            writer.add_scalar(f"rm/val_{k}", v, state["global_step"])
                    if state["best_val"] is None or metrics["loss"] < state["best_val"]:
                        state["best_val"] = float(metrics["loss"])
                        state["bad_epochs"] = 0
                        _save_best(out, model, tokenizer)
                    else:
                        state["bad_epochs"] += 1
                        if cfg.patience and state["bad_epochs"] >= cfg.patience:
                            state["finished"] = state["early_stopped"] = True
                            record["early_stop"] = True
                state["history"].append(record)
                _save_checkpoint(out, model, tokenizer, state, optimizer)
            state["finished"] = True
            _save_checkpoint(out, model, tokenizer, state, optimizer)
        finally:
            bar.close()
            if writer is not None:
                writer.close()
    if (out / BEST_DIR / "model.safetensors").exists():
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(out / BEST_DIR / "model.safetensors")), strict=False)
    model.eval()
    summary = {
        "steps": state["global_step"], "epochs_run": state["epoch"], "best_val_loss": state["best_val"],
        "history": state["history"], "lr": lr, "train_seconds": round(time.time() - t0, 2),
    }
    return model, summary
