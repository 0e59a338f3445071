"""The reward-model card ``agentrm_rm.json`` and the checks of a saved RM directory's files.

The card records the kind (``value``, ``pooled_value``, ``implicit``, ``judge``, or one a package
registers), the backbone, the RM text format and its header version, a summary of the training data and the
metrics. :func:`write_card` / :func:`read_card` write and read it; :func:`check_kind` checks the files match
the card's kind (:func:`layout_kind`); :func:`check_hf_dir`, :func:`load_hf` and :func:`load_tokenizer`
check a Hugging Face directory's files before use, so a missing or unreadable one raises
:class:`RMLoadError` naming it; :func:`require_hf` is the first call of every built-in kind's ``load``.
No model class is imported here (:mod:`agentrm_gym.rm.loading` dispatches on the card's kind).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentrm_gym.core import AgentRMGymError
from agentrm_gym.files import write_json_atomic

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
    return write_json_atomic(path / CARD_NAME, data, indent=2, ensure_ascii=True)


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


#: A Hugging Face ``architectures`` name ending -> the RM kind whose loader builds that head.
ARCHITECTURE_KINDS = (("ForSequenceClassification", "value"), ("ForCausalLM", "judge"), ("LMHeadModel", "judge"))
#: What each kind's directory holds (for messages).
KIND_FILES = {"value": "config.json of a *ForSequenceClassification model", "judge": "config.json of a causal LM",
              "implicit": "policy/ and reference/", "pooled_value": "value_head.json and encoder/"}


def layout_kind(path: str | Path) -> tuple[str | None, str]:
    """The RM kind the files of ``path`` hold, told from the files alone, and what showed it; ``(None, ...)``
    when the files do not tell (no model files, or an architecture name not in :data:`ARCHITECTURE_KINDS`)."""
    path = Path(path)
    if (path / "value_head.json").is_file() or (path / "encoder").is_dir():
        return "pooled_value", "value_head.json / encoder/"
    if (path / "policy").is_dir() and (path / "reference").is_dir():
        return "implicit", "policy/ and reference/"
    if (path / "config.json").is_file():
        archs = _read_json(path / "config.json", "model config").get("architectures") or []
        for arch in archs if isinstance(archs, list) else []:
            for ending, kind in ARCHITECTURE_KINDS:
                if isinstance(arch, str) and arch.endswith(ending):
                    return kind, f"config.json architectures {archs}"
        return None, f"config.json architectures {archs}"
    return None, "no model files"


def check_kind(path: str | Path, kind: str) -> None:
    """Raise :class:`RMLoadError` when the card's ``kind`` does not match the files of ``path`` (a card edited
    by hand, or copied next to another RM's files), instead of loading, say, a value model as a judge."""
    path = Path(path)
    held, evidence = layout_kind(path)
    if held is not None and kind in KIND_FILES and held != kind:
        raise RMLoadError(
            f"{path / CARD_NAME}: the card says kind {kind!r}, but the directory holds a {held!r} reward model "
            f"({evidence}; a {kind!r} one has {KIND_FILES[kind]}). The card was edited or belongs to other "
            f"files: set \"kind\": {held!r} in it, or point at the {kind!r} model's directory")


def require_hf() -> None:
    """torch and transformers, or :class:`~agentrm_gym.core.MissingExtra` naming the ``[llm]`` extra; and
    transformers' logging quietened, so that loading a model prints nothing."""
    from agentrm_gym.rm.backbones import _quiet_transformers, require_torch

    require_torch()
    _quiet_transformers()


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


def load_model_dir(path: str | Path, card: dict[str, Any], meta: dict[str, Any], auto_class: str,
                   max_length: int, pad_model: bool = False) -> tuple[Any, Any, dict[str, Any]]:
    """A one-model RM directory (value, judge): ``(model, tokenizer, constructor kwargs)``.

    Args:
        auto_class: the ``transformers`` auto class that loads the model, e.g. ``AutoModelForCausalLM``.
        max_length: the default of the card's ``max_length``.
        pad_model: also set the model's pad token id (a sequence classifier pools at the last non-pad).
    """
    require_hf()
    import transformers

    from agentrm_gym.rm.backbones import ensure_pad_token

    path = Path(path)
    model = load_hf(path, getattr(transformers, auto_class))
    tok = load_tokenizer(path)
    ensure_pad_token(tok, model if pad_model else None)
    kwargs = {"max_length": card.get("max_length", max_length), "backbone": card.get("backbone", ""), "meta": meta}
    return model, tok, kwargs
