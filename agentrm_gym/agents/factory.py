"""Policies from spec strings: :func:`make_policy` (the backends import the base classes, not this)."""

from __future__ import annotations

from typing import Any

from agentrm_gym.agents.policy import NoisyOraclePolicy, OraclePolicy, Policy, RandomPolicy


def make_policy(spec: str, seed: int | None = None, **kwargs: Any) -> Policy:
    """A policy from a spec string.

    Args:
        spec: ``oracle``, ``random``, ``noisy:P`` (noisy oracle), ``openai:URL`` (optionally
            ``openai:URL#model``), ``vllm:PATH``, or a transformers model directory / model id.
        seed: sampling seed.
        **kwargs: backend options (``max_new_tokens``, ``device``, ``builder``, ``api_key``, ...).
    """
    if spec == "oracle":
        return OraclePolicy(seed=seed)
    if spec == "random":
        return RandomPolicy(seed=seed)
    if spec.startswith("noisy:"):
        return NoisyOraclePolicy(float(spec.split(":", 1)[1]), seed=seed)
    if spec.startswith("openai:"):
        from agentrm_gym.agents.openai_backend import OpenAIPolicy

        url, _, model = spec[len("openai:"):].partition("#")
        return OpenAIPolicy(url, model=model or kwargs.pop("model", None), seed=seed, **kwargs)
    if spec.startswith("vllm:"):
        from agentrm_gym.agents.vllm_backend import VLLMPolicy

        return VLLMPolicy(spec[len("vllm:"):], seed=seed, **kwargs)
    from agentrm_gym.agents.hf import TransformersPolicy

    return TransformersPolicy(spec, seed=seed, **kwargs)
