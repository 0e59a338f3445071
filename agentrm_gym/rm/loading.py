"""Loading a saved reward model: read its card and build the variant its ``kind`` names.

:func:`load_reward_model` is the one place that imports every variant (value, implicit, judge); the
variants themselves only need :mod:`agentrm_gym.rm.card` to save, so nothing here is imported back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentrm_gym.rm.card import CARD_NAME, RMLoadError, check_kind, load_hf, load_tokenizer, read_card
from agentrm_gym.rm.format import RMFormat


def load_reward_model(path: str | Path, **overrides: Any) -> Any:
    """Load a saved reward model, dispatching on the card's ``kind``.

    Args:
        path: the directory written by ``rm.save()`` / a trainer.
        overrides: constructor arguments to change (``batch_size``, ``max_length`` ...).

    Raises:
        RMLoadError: a missing or corrupted card, config, weights or tokenizer file (named in the message), or
            a card whose ``kind`` does not match the directory's files.
    """
    from agentrm_gym.rm.backbones import _quiet_transformers, ensure_pad_token, require_torch

    require_torch()
    _quiet_transformers()
    path = Path(path)
    card = read_card(path)
    kind = card["kind"]
    check_kind(path, kind)  # the files must be a model of the card's kind (a value model is no judge)
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
    if kind == "pooled_value":
        from agentrm_gym.rm.pooled import PooledValueRewardModel

        return PooledValueRewardModel.load(path, card, fmt, meta, **overrides)
    raise RMLoadError(f"{path / CARD_NAME}: unknown reward-model kind {kind!r} (value, pooled_value, implicit, judge)")
