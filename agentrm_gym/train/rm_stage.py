"""Stage 5, train-rm: the explicit RM on the extracted pairs (``agentrm pipeline train-rm``), and the
implicit RM when the evaluation compares it.

Not to be confused with the trainers it calls (:func:`agentrm_gym.rm.pooled.train_pooled_rm`,
:func:`agentrm_gym.rm.train_value_rm`) or with ``agentrm rm train`` (a trainer on oracle-labelled
rollouts, outside the pipeline). ``rm_kind`` picks the explicit RM's trainer in :data:`RM_TRAINERS`
(:func:`register_rm_trainer` adds one):

* ``pooled`` (the demo's): the frozen mean-pooled encoder with a ridge head on group-centred values,
  ``alpha`` chosen by leave-one-task-out cross-validation (``rm_cv``; :mod:`agentrm_gym.rm.pooled`);
  ``policy`` as a backbone is the run's SFT policy (its hidden states: the one network of the run that
  read every task's train split), ``+stats`` appends the trajectory statistics, and with several
  ``rm_candidates`` the same cross-validation chooses the encoder too;
* ``value``: a fine-tuned ``AutoModelForSequenceClassification`` with one output, MSE (TensorBoard
  ``losses/rm_mse``, ``rm/val_loss``, ``rm/val_spearman``; resumable from its own checkpoint).

Both write ``<run>/rm`` (weights + ``agentrm_rm.json`` card, whose ``kind`` - ``pooled_value`` or ``value`` -
names the class in :data:`agentrm_gym.rm.RM_KINDS` that loads it back). With ``implicit`` in ``eval_rms`` the SFT
policy is also fitted as a PRIME-style implicit RM (``beta * log pi / pi_ref``, the SFT policy as the
frozen reference) on the outcomes of the sampled groups' final states, into ``<run>/rm_implicit``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentrm_gym.train.common import begin_stage, tb_writer
from agentrm_gym.train.config import PipelineConfig

#: A trainer of the train-rm stage: ``trainer(cfg, root, records, out)`` trains the explicit RM on the
#: extracted pairs ``records`` (dicts with ``state``, ``value``, ``group``, ``task``, ``task_id`` ...),
#: saves it with its card to ``out`` and returns it.
RMTrainer = Callable[[PipelineConfig, Path, list, Path], Any]


def rm_train_config(cfg: PipelineConfig) -> Any:
    """The :class:`~agentrm_gym.rm.TrainConfig` of the pipeline's ``rm_*`` fields."""
    from agentrm_gym.rm import TrainConfig

    return TrainConfig(epochs=cfg.rm_epochs, lr=cfg.rm_lr or None, batch_size=cfg.rm_batch_size,
                       max_length=cfg.rm_max_length, seed=cfg.seed)


def rm_backbone(cfg: PipelineConfig, root: str | Path, backbone: str | None = None) -> str:
    """An RM backbone of the run (default ``rm_backbone``), ``policy`` meaning the run's SFT policy directory."""
    backbone = cfg.rm_backbone if backbone is None else backbone
    if backbone == "policy":
        from agentrm_gym.train.context import policy_dir

        path = str(policy_dir(Path(root), cfg))
        if path.startswith(("openai:", "vllm:")):
            raise ValueError(f"rm_backbone=policy reads the policy's hidden states, but the policy is served "
                             f"({path}); set rm_backbone to minilm or to the model's local directory")
        return path
    return backbone


def pooled_candidates(cfg: PipelineConfig, root: str | Path) -> list[Any]:
    """The :class:`~agentrm_gym.rm.pooled.PooledConfig` of every ``rm_candidates`` entry (``BACKBONE`` or
    ``BACKBONE+stats``), or of ``rm_backbone`` / ``rm_stats`` when the list is empty."""
    from agentrm_gym.rm.pooled import PooledConfig

    entries = cfg.rm_candidates or [cfg.rm_backbone + ("+stats" if cfg.rm_stats else "")]
    out = []
    for entry in entries:
        name, plus, extra = entry.strip().partition("+")
        if not name or (plus and extra != "stats"):
            raise ValueError(f"bad rm_candidates entry {entry!r}: use BACKBONE or BACKBONE+stats "
                             "(BACKBONE: minilm, policy or a model directory)")
        out.append(PooledConfig(backbone=rm_backbone(cfg, root, name), max_length=cfg.rm_max_length,
                                stats=bool(plus), alphas=list(cfg.rm_alphas), cv=cfg.rm_cv, seed=cfg.seed,
                                selector=cfg.rm_selector, seen_selector=cfg.rm_seen_selector))
    return out


def rm_format(cfg: PipelineConfig) -> Any:
    """The RM text format of the run (``rm_text``)."""
    from agentrm_gym.rm.format import RMFormat

    return RMFormat(style=cfg.rm_text)


def train_implicit(cfg: PipelineConfig, root: Path, pairs: list[dict[str, Any]],
                   out: Path | None = None, **overrides: Any) -> dict[str, Any]:
    """Fit the implicit RM on the final states of the sampled groups (outcome labels in [0, 1]) with
    ``implicit_loss``, into ``out`` (default ``<run>/rm_implicit``, TensorBoard ``<run>/tb/rm_implicit``).

    ``implicit_steps`` AdamW steps, rounded to whole epochs: 8 states a step with ``ce``, 2 groups (about as
    many states) with ``bt``. With fewer than two groups holding different outcomes ``bt`` has no pairs to
    learn from: it falls back to ``ce``, with a warning, and the card says ``objective: ce``. ``overrides`` set
    other :class:`~agentrm_gym.rm.trainer.ImplicitConfig` fields (``label_smoothing``, ``margin``).
    """
    from agentrm_gym.agents.hf import load_model
    from agentrm_gym.rm.implicit import ranked_groups, train_implicit_rm
    from agentrm_gym.rm.trainer import ImplicitConfig
    from agentrm_gym.train.context import policy_dir

    if cfg.implicit_loss not in ("ce", "bt"):
        raise ValueError(f"implicit_loss must be 'ce' or 'bt', got {cfg.implicit_loss!r}")
    finals = [p for p in pairs if p.get("source") == "group"] or pairs
    path = policy_dir(root, cfg)
    policy, tok = load_model(path, device="cpu")
    reference, _ = load_model(path, device="cpu")
    groups, labels = [p["group"] for p in finals], [float(p["value"]) for p in finals]
    ranked = len(ranked_groups(groups, labels))  # bt's items: the groups that give a pair
    loss = cfg.implicit_loss
    if loss == "bt" and ranked < 2:
        warnings.warn(f"implicit_loss=bt: {ranked} sampled group(s) hold different outcomes, 2 are needed; "
                      "the implicit RM trains with ce", stacklevel=2)
        loss = "ce"
    batch = 8 if loss == "ce" else 2
    items = len(finals) if loss == "ce" else ranked
    epochs = max(1, round(cfg.implicit_steps * batch / max(1, items)))
    # the same token budget as the explicit RM's text (rm_max_length), within the policy's context
    config = ImplicitConfig(epochs=epochs, seed=cfg.seed, max_length=min(cfg.rm_max_length, cfg.context), patience=0,
                            loss=loss, batch_size=batch, **overrides)
    log_dir = root / "tb" / "rm_implicit" if out is None else out / "tb"
    out = out or root / "rm_implicit"
    rm = train_implicit_rm([(p["state"], p["value"]) for p in finals], policy, reference, tok, config,
                           groups=groups, out_dir=out, fmt=rm_format(cfg), backbone=path,
                           log_dir=log_dir)
    return {"rm": str(out), "samples": len(finals), "metrics": rm.card().get("metrics")}


def train_pooled(cfg: PipelineConfig, root: Path, records: list[dict[str, Any]], out: Path) -> Any:
    """``rm_kind=pooled``: :func:`~agentrm_gym.rm.pooled.train_pooled_rm` on ``pooled_candidates``, the
    selected candidate's cross-validated metrics as TensorBoard ``rm/cv_selected_*``."""
    from agentrm_gym.rm.pooled import train_pooled_rm

    writer = tb_writer(root, "rm")
    rm = train_pooled_rm(records, pooled_candidates(cfg, root), out_dir=out, fmt=rm_format(cfg), writer=writer)
    if writer is not None:
        metrics = rm.card()["metrics"]
        for key in ("task_pairwise_accuracy", "pairwise_accuracy", "bon_lift"):
            if metrics.get(key) is not None:
                writer.add_scalar(f"rm/cv_selected_{key}", metrics[key], 0)
        writer.close()
    return rm


def train_value(cfg: PipelineConfig, root: Path, records: list[dict[str, Any]], out: Path) -> Any:
    """``rm_kind=value``: :func:`~agentrm_gym.rm.train_value_rm` (MSE), logs under ``tb/rm``."""
    from agentrm_gym.rm import train_value_rm

    return train_value_rm(records, rm_train_config(cfg), backbone=rm_backbone(cfg, root), out_dir=out,
                          fmt=rm_format(cfg), log_dir=Path(root) / "tb" / "rm")


#: The pipeline's ``rm_kind`` -> its trainer (an :data:`RMTrainer`, or ``"module:function"`` naming one).
RM_TRAINERS: dict[str, RMTrainer | str] = {"pooled": train_pooled, "value": train_value}


def register_rm_trainer(rm_kind: str, trainer: RMTrainer | str, *, replace: bool = False) -> None:
    """Add a train-rm trainer: ``--set rm_kind=NAME`` trains the explicit RM with ``trainer``.

    The trainer follows :data:`RMTrainer`; the card it saves must name a kind the loader knows
    (:data:`agentrm_gym.rm.RM_KINDS`, :func:`agentrm_gym.rm.register_rm_kind`), so that the evaluate stage
    loads the RM back.

    Raises:
        ValueError: an empty name, or one already registered to another trainer (without ``replace``).
    """
    if not isinstance(rm_kind, str) or not rm_kind:
        raise ValueError(f"an rm_kind is a non-empty string, got {rm_kind!r}")
    held = RM_TRAINERS.get(rm_kind)
    if held is not None and held != trainer and not replace:
        raise ValueError(f"rm_kind {rm_kind!r} is already registered to {held!r}; pass replace=True to replace it")
    RM_TRAINERS[rm_kind] = trainer


def rm_trainer(rm_kind: str) -> RMTrainer:
    """The trainer of ``rm_kind`` (:data:`RM_TRAINERS`).

    Raises:
        ValueError: an unknown ``rm_kind`` (the message lists the known ones).
    """
    trainer = RM_TRAINERS.get(rm_kind)
    if trainer is None:
        raise ValueError(f"rm_kind must be one of {', '.join(repr(k) for k in RM_TRAINERS)}, got {rm_kind!r} "
                         "(agentrm_gym.train.rm_stage.register_rm_trainer adds one)")
    if isinstance(trainer, str):
        from agentrm_gym.rm.loading import import_object

        trainer = import_object(trainer, f"the trainer of rm_kind {rm_kind!r}")
    return trainer


def run_train_rm(cfg: PipelineConfig, root: str | Path) -> dict[str, Any]:
    """Train and save the RM(s); returns the stage summary (the cards' training and metrics)."""
    stage = begin_stage(root, "rm", threads=cfg.threads, mkdir=False)
    if stage.done:
        return stage.summary
    from agentrm_gym.rm.loading import rm_class
    from agentrm_gym.train.extract import load_pairs

    out = stage.out
    # extract/pairs.jsonl whole (count and sha256 of extract/done.json), parsed once for every trainer
    records = load_pairs(root)
    if len(records) < 2:
        raise ValueError(f"{root}/extract/pairs.jsonl holds {len(records)} pairs; the RM needs at least 2 "
                         "(explore more trees or groups, or lower min_visits)")
    rm = rm_trainer(cfg.rm_kind)(cfg, Path(root), records, out)
    card = rm.card()
    rm_class(card.get("kind"), out)  # the evaluate stage must load it back: its kind is in RM_KINDS
    summary: dict[str, Any] = {"rm": str(out), "kind": card.get("kind"), "backbone": card.get("backbone"),
                               "training": card.get("training"), "metrics": card.get("metrics")}
    if "implicit" in cfg.eval_rms:
        summary["implicit"] = train_implicit(cfg, Path(root), records)
    return stage.finish(summary)
