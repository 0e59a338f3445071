"""Saving and loading reward models: a Hugging Face directory plus the JSON card ``agentrm_rm.json``.

The card records the kind (``value``, ``implicit``, ``judge``), the backbone, the RM text format and its
header version, a summary of the training data and the metrics. :func:`load_reward_model` reads the card
and dispatches on its kind. Every file is checked before use, and a missing or unreadable one raises
:class:`RMLoadError` naming it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from agentrm_gym.core import AgentRMGymError
from agentrm_gym.rm.format import RMFormat

CARD_NAME = "agentrm_rm.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CARD_VERSION = 1


class RMLoadError(AgentRMGymError, ValueError):
    """A reward-model directory cannot be loaded; the message names the file at fault."""


def write_card(path: str | Path, card: dict[str, Any]) -> Path:
    """Write ``agentrm_rm.json`` atomically (temp file + rename)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    data = {"card_version": CARD_VERSION, **card}
    fd, tmp = tempfile.mkstemp(dir=path, prefix=".card", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=str)
    os.replace(tmp, path / CARD_NAME)
    return path / CARD_NAME


def _read_json(file: Path, what: str) -> dict[str, Any]:
    if not file.is_file():
        raise RMLoadError(f"{file}: missing ({what}); is this a directory written by rm.save()?")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RMLoadError(f"{file}: corrupted {what} ({exc})") from exc
    if not isinstance(data, dict):
        raise RMLoadError(f"{file}: corrupted {what} (expected a JSON object)")
    return data


def read_card(path: str | Path) -> dict[str, Any]:
    """The card of an RM directory, validated (kind present)."""
    path = Path(path)
    if not path.is_dir():
        raise RMLoadError(f"{path}: no such reward-model directory")
    card = _read_json(path / CARD_NAME, "reward-model card")
    if "kind" not in card:
        raise RMLoadError(f"{path / CARD_NAME}: corrupted reward-model card (no 'kind')")
    return card


def check_hf_dir(path: Path) -> Path:
    """Check ``config.json`` parses and a weights file exists; returns the weights file."""
    _read_json(path / "config.json", "model config")
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    raise RMLoadError(f"{path / WEIGHT_FILES[0]}: missing model weights")


def load_hf(path: Path, loader: Any, **kwargs: Any) -> Any:
    """``loader.from_pretrained(path)`` with errors turned into :class:`RMLoadError` naming the file."""
    weights = check_hf_dir(path)
    try:
        return loader.from_pretrained(path, **kwargs)
    except Exception as exc:
        raise RMLoadError(f"{weights}: cannot load model weights ({type(exc).__name__}: {exc})") from exc


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as exc:
        name = "tokenizer.json" if (path / "tokenizer.json").exists() else "tokenizer_config.json"
        raise RMLoadError(f"{path / name}: cannot load the tokenizer ({type(exc).__name__}: {exc})") from exc


def load_reward_model(path: str | Path, **overrides: Any) -> Any:
    """Load a saved reward model, dispatching on the card's ``kind``.

    Args:
        path: the directory written by ``rm.save()`` / a trainer.
        overrides: constructor arguments to change (``batch_size``, ``max_length`` ...).

    Raises:
        RMLoadError: a missing or corrupted card, config, weights or tokenizer file (named in the message).
    """
    from agentrm_gym.rm.backbones import _quiet_transformers, ensure_pad_token, require_torch

    require_torch()
    _quiet_transformers()
    path = Path(path)
    card = read_card(path)
    kind = card["kind"]
    try:
        fmt = RMFormat.from_dict(card.get("format"))
    except (TypeError, ValueError) as exc:
        raise RMLoadError(f"{path / CARD_NAME}: {exc}") from exc
    meta = {k: v for k, v in card.items() if k not in ("kind", "format", "header_version", "card_version",
                                                       "backbone", "max_length", "beta", "aggregate")}
    if kind == "value":
        from transformers import AutoModelForSequenceClassification

        from agentrm_gym.rm.value import ValueRewardModel

        model = load_hf(path, AutoModelForSequenceClassification)
        tok = load_tokenizer(path)
        ensure_pad_token(tok, model)
        kwargs = {"max_length": card.get("max_length", 256), "backbone": card.get("backbone", ""), "meta": meta}
        return ValueRewardModel(model, tok, fmt, **{**kwargs, **overrides})
    if kind == "implicit":
        from transformers import AutoModelForCausalLM

        from agentrm_gym.rm.implicit import ImplicitRewardModel

        policy = load_hf(path / "policy", AutoModelForCausalLM)
        reference = load_hf(path / "reference", AutoModelForCausalLM)
        tok = load_tokenizer(path / "policy")
        ensure_pad_token(tok)
        kwargs = {"beta": card.get("beta", 0.05), "aggregate": card.get("aggregate", "sum"),
                  "max_length": card.get("max_length", 512), "backbone": card.get("backbone", ""), "meta": meta}
        return ImplicitRewardModel(policy, reference, tok, fmt, **{**kwargs, **overrides})
    if kind == "judge":
        from transformers import AutoModelForCausalLM

        from agentrm_gym.rm.judge import JudgeRewardModel

        model = load_hf(path, AutoModelForCausalLM)
        tok = load_tokenizer(path)
        ensure_pad_token(tok)
        kwargs = {"max_length": card.get("max_length", 512), "backbone": card.get("backbone", ""), "meta": meta}
        return JudgeRewardModel(model, tok, fmt, **{**kwargs, **overrides})
    raise RMLoadError(f"{path / CARD_NAME}: unknown reward-model kind {kind!r} (value, implicit, judge)")
