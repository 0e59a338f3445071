"""The scoring API shared by every reward model: batched ``score(states)`` with a text-keyed cache.

Subclasses implement :meth:`RewardModel._score_texts` (one batch of formatted RM texts -> values) or, where
the model needs the turns themselves (the implicit RM), :meth:`RewardModel._score_states`. The base class
formats the states, looks each text up in an LRU cache, scores only the misses in batches of
``batch_size`` and fills the cache, so re-scoring a prefix during search costs nothing. The cache is keyed
by a 16-byte BLAKE2b digest of the text, not the text itself, so its memory is bounded by its entry count
(about :data:`CACHE_ENTRY_BYTES` an entry) whatever the texts' length - a served RM (``agentrm serve rm``)
cannot be made to hold every long text a client ever sent. Counters
(:attr:`RewardModel.stats`) record requested states, cache hits and model forward passes, which is how the
tests and the throughput benchmark see what was computed.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from agentrm_gym.rm.format import RMFormat
from agentrm_gym.trajectory import AgentState

#: Roughly what one cache entry costs: a 16-byte digest (a 49-byte bytes object), a float and the ordered
#: dict's link, measured with tracemalloc on CPython 3.11.
CACHE_ENTRY_BYTES = 200


def text_key(text: str) -> bytes:
    """The cache key of an RM text: its 16-byte BLAKE2b digest (lone surrogates are hashed as they are)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass
class ScoreStats:
    """What a reward model computed since it was made (or since :meth:`reset`)."""

    states: int = 0  #: states (or texts) asked for
    cache_hits: int = 0  #: of those, answered from the cache
    forward_calls: int = 0  #: model forward passes (batches), what the cache saves

    def reset(self) -> None:
        self.states = self.cache_hits = self.forward_calls = 0


class RewardModel:
    """Base class: ``rm.score(states) -> np.ndarray`` (also ``rm(states)``).

    Args:
        fmt: how a state becomes RM input text.
        batch_size: states per model forward pass.
        cache_size: entries kept in the LRU score cache (0 disables caching); each costs about
            :data:`CACHE_ENTRY_BYTES` (the key is a digest of the text), so the default 100,000 stay near 20 MB.
    """

    #: The card's ``kind`` (``value``, ``implicit``, ``judge``, ``remote``).
    kind: ClassVar[str] = "base"

    def __init__(self, fmt: RMFormat | None = None, batch_size: int = 32, cache_size: int = 100_000):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.fmt = fmt or RMFormat()
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, float] = OrderedDict()
        self.stats = ScoreStats()

    # ------------------------------------------------------------------ public API
    def text(self, state: AgentState) -> str:
        """The RM input text of a state (the cache key)."""
        return self.fmt.text(state)

    def score(self, states: Sequence[AgentState]) -> np.ndarray:
        """Scores of a batch of states, float64 of shape ``(len(states),)``; cached ones cost nothing."""
        states = list(states)
        for s in states:
            if not isinstance(s, AgentState):
                raise TypeError(f"score() takes AgentState objects, got {type(s).__name__}")
        texts = [self.text(s) for s in states]
        return self._cached(texts, lambda idx: self._score_states([states[i] for i in idx]))

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Scores of already formatted RM texts (OpenRLHF's remote-RM protocol sends these)."""
        texts = [str(t) for t in texts]
        return self._cached(texts, lambda idx: self._score_texts([texts[i] for i in idx]))

    def __call__(self, states: Sequence[AgentState]) -> np.ndarray:
        return self.score(states)

    def clear_cache(self) -> None:
        self._cache.clear()

    def cache_bytes(self) -> int:
        """An estimate of the score cache's memory (entries x :data:`CACHE_ENTRY_BYTES`)."""
        return len(self._cache) * CACHE_ENTRY_BYTES

    def card(self) -> dict[str, Any]:
        """The JSON card fields this model contributes (kind, format); subclasses add theirs."""
        return {"kind": self.kind, "format": self.fmt.to_dict(), "header_version": self.fmt.header_version}

    # ------------------------------------------------------------------ for subclasses
    def _score_texts(self, texts: list[str]) -> np.ndarray:
        """Score a batch of formatted texts (at most ``batch_size``); count ``stats.forward_calls``."""
        raise NotImplementedError(f"{type(self).__name__} cannot score plain texts")

    def _score_states(self, states: list[AgentState]) -> np.ndarray:
        """Score a batch of states; by default formats them and calls :meth:`_score_texts`."""
        return self._score_texts([self.text(s) for s in states])

    # ------------------------------------------------------------------ cache
    def _cached(self, texts: list[str], compute: Any) -> np.ndarray:
        self.stats.states += len(texts)
        out = np.empty(len(texts), dtype=np.float64)
        missing: dict[bytes, list[int]] = {}
        for i, t in enumerate(texts):
            key = text_key(t)
            if key in self._cache:
                out[i] = self._cache[key]
                self._cache.move_to_end(key)
                self.stats.cache_hits += 1
            elif key in missing:
                missing[key].append(i)
                self.stats.cache_hits += 1  # a duplicate within the batch is scored once
            else:
                missing[key] = [i]
        # length-bucketed batches: little padding per forward pass (stable for equal lengths)
        keys = sorted(missing, key=lambda k: len(texts[missing[k][0]]))
        for start in range(0, len(keys), self.batch_size):
            chunk = keys[start : start + self.batch_size]
            values = np.asarray(compute([missing[k][0] for k in chunk]), dtype=np.float64).reshape(-1)
            if values.shape[0] != len(chunk):
                raise RuntimeError(f"{type(self).__name__} returned {values.shape[0]} scores for {len(chunk)} inputs")
            for k, v in zip(chunk, values, strict=True):
                for i in missing[k]:
                    out[i] = v
                if self.cache_size > 0:
                    self._cache[k] = float(v)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out


class FunctionRewardModel(RewardModel):
    """Wrap a plain function ``f(state) -> float`` (an oracle, a heuristic) as a reward model."""

    kind = "function"

    def __init__(self, fn: Any, fmt: RMFormat | None = None, cache_size: int = 100_000):
        super().__init__(fmt=fmt, batch_size=1_000_000, cache_size=cache_size)
        self.fn = fn

    def _score_states(self, states: list[AgentState]) -> np.ndarray:
        self.stats.forward_calls += 1
        return np.array([float(self.fn(s)) for s in states], dtype=np.float64)
