"""Policies from spec strings: :func:`make_policy` (the backends import the base classes, not this)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agentrm_gym.agents.policy import NoisyOraclePolicy, OraclePolicy, Policy, RandomPolicy
from agentrm_gym.core import AgentRMGymError

SPECS = ("oracle | random | noisy:P | openai:URL[#model] | vllm:PATH | python:module:attr | a model directory | "
         "a Hub model id (org/name)")


class PolicyNotFound(AgentRMGymError, FileNotFoundError):
    """A policy spec that names a local path which is not a model directory."""


def looks_like_path(spec: str) -> bool:
    """Whether ``spec`` reads as a filesystem path rather than a Hub id (``org/name``)."""
    return (spec.startswith(("/", "./", "../", "~", ".\\")) or spec in (".", "..") or "\\" in spec
            or spec.count("/") > 1 or spec.endswith("/") or (len(spec) > 2 and spec[0].isalpha() and spec[1] == ":" and spec[2] in "/\\")
            or Path(spec).exists())


def check_model_dir(spec: str) -> None:
    """Raise :class:`PolicyNotFound` when ``spec`` is a path but not a Hugging Face model directory."""
    if not looks_like_path(spec):
        return
    path = Path(os.path.expanduser(spec))
    if not path.exists():
        raise PolicyNotFound(f"policy {spec!r}: no such directory; pass a model directory (e.g. RUN/sft/policy) "
                             f"or one of: {SPECS}")
    if not path.is_dir():
        raise PolicyNotFound(f"policy {spec!r} is a file, not a model directory; pass the directory that holds "
                             "config.json")
    if not (path / "config.json").is_file():
        raise PolicyNotFound(f"policy {spec!r}: {path / 'config.json'} is missing, so this is not a Hugging Face "
                             "model directory (a trained policy is RUN/sft/policy)")


def python_policy(spec: str, seed: int | None = None, **kwargs: Any) -> Policy:
    """The policy ``python:module:attr`` names: a :class:`Policy` object as it is, else a class or factory
    called with ``seed`` and the options its signature takes (the others are dropped)."""
    import inspect

    from agentrm_gym.extras import import_object

    obj = import_object(spec[len("python:"):], f"policy {spec!r}")
    if not isinstance(obj, Policy) and callable(obj):
        try:
            params = inspect.signature(obj).parameters
        except (TypeError, ValueError):
            params = {}
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        options = {k: v for k, v in {"seed": seed, **kwargs}.items() if takes_any or k in params}
        obj = obj(**options)
    if not (isinstance(obj, Policy) or callable(getattr(obj, "propose", None))):
        raise TypeError(f"policy {spec!r} is a {type(obj).__name__}, not a Policy (it needs propose(state, n, "
                        "temperature))")
    return obj


def make_policy(spec: str, seed: int | None = None, **kwargs: Any) -> Policy:
    """A policy from a spec string.

    Args:
        spec: ``oracle``, ``random``, ``noisy:P`` (noisy oracle), ``openai:URL`` (optionally
            ``openai:URL#model``), ``vllm:PATH``, ``python:module:attr`` (a :class:`Policy` object, or a
            class / factory called with ``seed=`` and the backend options that makes one: a policy backend
            of your own), or a transformers model directory / model id.
        seed: sampling seed.
        **kwargs: backend options (``max_new_tokens``, ``device``, ``builder``, ``api_key``, ...).
    """
    if spec == "oracle":
        return OraclePolicy(seed=seed)
    if spec == "random":
        return RandomPolicy(seed=seed)
    if spec.startswith("noisy:"):
        raw = spec.split(":", 1)[1]
        try:
            p = float(raw)
        except ValueError:
            p = -1.0
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"policy {spec!r}: noisy:P needs a probability P in [0, 1], got {raw!r}")
        return NoisyOraclePolicy(p, seed=seed)
    if spec.startswith("openai:"):
        from agentrm_gym.agents.openai_backend import OpenAIPolicy

        url, _, model = spec[len("openai:"):].partition("#")
        return OpenAIPolicy(url, model=model or kwargs.pop("model", None), seed=seed, **kwargs)
    if spec.startswith("vllm:"):
        from agentrm_gym.agents.vllm_backend import VLLMPolicy

        return VLLMPolicy(spec[len("vllm:"):], seed=seed, **kwargs)
    if spec.startswith("python:"):
        return python_policy(spec, seed, **kwargs)
    check_model_dir(spec)
    from agentrm_gym.agents.hf import TransformersPolicy

    return TransformersPolicy(spec, seed=seed, **kwargs)
