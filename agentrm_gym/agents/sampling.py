"""A shared-prompt KV-cache sampler for causal LMs: each prompt encoded once for its ``n`` samples.

``transformers``' ``generate`` with ``num_return_sequences`` copies every prompt ``n`` times before the
first forward pass, and with ``stop_strings`` it keeps every row running until the longest one stops.
For a policy that writes one short turn per call (a thought and an action, then end-of-turn) that is
most of the work. :func:`sample_continuations` instead

1. encodes each distinct prompt once (left padding, explicit position ids), keeping the KV cache;
2. repeats each prompt's cache ``n`` times (``DynamicCache.batch_repeat_interleave``) and samples all
   rows in lockstep, one token per forward pass;
3. drops a row from the batch (``batch_select_indices``) as soon as it emits the end-of-sequence token
   or one of the stop strings appears in its text, so a finished row costs nothing more. A row's recent
   text is decoded for that check only while one of its last 12 tokens holds the first character of a
   stop string (the tokens that do are found once per tokenizer), not after every token.

With a :class:`PrefixCache` the prompts' KV caches are also kept *across* calls: a prompt resumes from
the longest token prefix it shares with a recent prompt and only its new tokens are encoded. An agent's
next prompt is its previous one plus a turn and an observation, and every prompt of a task starts with
the same instruction, so in an episode most prompt tokens are encoded once. Reused and new tokens sit in
one batch with padding between them (attention mask and explicit position ids), which is exact for any
causal LM; a change to the model's weights (an optimiser step, ``load_state_dict``) empties the cache.

The forward passes (the prompts' and every decoding step's) run through the fused step of
:mod:`~agentrm_gym.agents.decode` when the model is a GPT-2 it supports (the policies this project trains):
one preallocated KV cache per call, the same logits as ``model.forward`` bit for bit, so the same samples;
any other model, or ``fused=False``, runs through ``model.forward`` with a ``DynamicCache``.

The log-probability of each sampled token is taken under the raw logits (temperature 1), the same as
the ``generate`` path of :class:`~agentrm_gym.agents.hf.HFGenerator`. Sampling draws from torch's global
generator, so ``torch.manual_seed`` makes a run reproducible.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Tokens decoded for the stop-string check: the stop strings' text lives in the last few tokens.
STOP_WINDOW = 12
_STOP_START_IDS: weakref.WeakKeyDictionary[Any, dict[frozenset[str], frozenset[int]]] = weakref.WeakKeyDictionary()


@dataclass
class RawSample:
    """Token ids and per-token log-probs of one continuation, before stop strings are cut."""

    token_ids: list[int]
    token_logprobs: list[float]
    stopped: bool


def _top_p_filter(torch: Any, logits: Any, top_p: float) -> Any:
    """Mask logits outside the smallest set of tokens whose probability reaches ``top_p``."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    drop = cum - torch.softmax(sorted_logits, dim=-1) > top_p  # keep the token that crosses top_p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def stop_start_ids(tokenizer: Any, stop: Sequence[str]) -> frozenset[int] | None:
    """Ids of the tokens whose text holds the first character of a stop string, or ``None`` (check every
    token) when a stop string starts with a non-ASCII character (a byte-level token may hold part of it)."""
    chars = frozenset(s[0] for s in stop if s)
    if not chars or not all(c.isascii() for c in chars):
        return None
    try:
        per_tokenizer = _STOP_START_IDS.setdefault(tokenizer, {})
    except TypeError:  # not weak-referenceable: compute every call
        per_tokenizer = {}
    if chars not in per_tokenizer:
        per_tokenizer[chars] = frozenset(
            i for i in range(len(tokenizer)) if any(c in tokenizer.decode([i], skip_special_tokens=True) for c in chars))
    return per_tokenizer[chars]


KV = list[tuple[Any, Any]]  # per layer (keys, values), each [heads, tokens, head_dim]


class PrefixCache:
    """The KV caches of recent prompts, to resume a new prompt from the longest token prefix it shares.

    Args:
        max_bytes: the most the kept key/value tensors may take (least recently used dropped first).

    One cache serves one model: :meth:`check` empties it when the model's weights changed since the
    entries were made (torch's in-place version counters of the parameters).
    """

    def __init__(self, max_bytes: int = 256 << 20):
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = self.reused = self.encoded = 0
        # per entry: its KV, its bytes, its ids as an array (the lookup table is rebuilt from these)
        self._entries: OrderedDict[tuple[int, ...], tuple[KV, int, Any]] = OrderedDict()
        self._table: tuple[list[tuple[int, ...]], Any] | None = None
        self._weights: Any = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._table = None
            self.bytes = 0

    def check(self, model: Any) -> None:
        """Empty the cache if ``model`` is not the one (or its weights not the ones) the entries came from."""
        weights = (id(model), sum(getattr(p, "_version", 0) for p in model.parameters()))
        if weights != self._weights:
            self.clear()
            self._weights = weights

    def longest(self, ids: Sequence[int]) -> tuple[int, KV | None]:
        """``(length, kv)`` of the entry sharing the longest token prefix with ``ids`` (``(0, None)``: none)."""
        import numpy as np

        with self._lock:
            if not self._entries or not len(ids):
                return 0, None
            if self._table is None:  # all entries' ids in one array (-1 after each end): one comparison
                keys = list(self._entries)
                table = np.full((len(keys), max(map(len, keys))), -1, dtype=np.int64)
                for row, key in enumerate(keys):
                    table[row, :len(key)] = self._entries[key][2]
                self._table = (keys, table)
            keys, table = self._table
            width = min(len(ids), table.shape[1])
            differ = table[:, :width] != np.asarray(ids[:width], dtype=np.int64)
            shared = np.where(differ.any(axis=1), differ.argmax(axis=1), width)
            best = int(shared.argmax())
            if not shared[best]:
                return 0, None
            self._entries.move_to_end(keys[best])
            return int(shared[best]), self._entries[keys[best]][0]

    def count(self, reused: Sequence[int], total: int) -> None:
        """Account one call: the tokens each prompt resumed, of ``total`` prompt tokens."""
        self.hits += sum(1 for r in reused if r)
        self.reused += sum(reused)
        self.encoded += total - sum(reused)

    def put(self, ids: Sequence[int], kv: KV) -> None:
        """Keep ``kv`` (per layer keys and values of exactly ``ids``), dropping old entries beyond the budget."""
        import numpy as np

        key = tuple(ids)
        size = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return
            self._entries[key] = (kv, size, np.asarray(key, dtype=np.int64))
            self._table = None
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, old, _) = self._entries.popitem(last=False)
                self.bytes -= old


def _layers(cache: Any) -> KV:
    """Per layer ``(keys, values)`` of a ``DynamicCache`` (``layers`` in transformers >= 4.56, else lists)."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


#: Padding a row may take to join a wider row's forward pass (tokens); wider gaps get their own pass.
PAD_SLACK = 32


def _buckets(lengths: Sequence[int]) -> list[list[int]]:
    """Row indices grouped for the prompt passes: longest first, a row joins the current group while it is
    at most ``max(PAD_SLACK, width / 4)`` tokens shorter than the group's widest row."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[groups[-1][0]] - lengths[i] <= max(PAD_SLACK, lengths[groups[-1][0]] // 4):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _encode(model: Any, prompt_ids: Sequence[Sequence[int]], pad: int, device: Any,
            prefix_cache: PrefixCache | None, decoder: Any = None, room: int = 0) -> tuple[Any, Any, Any, Any]:
    """The prompts' forward passes: ``(logits at each prompt's end, cache, attention mask, next position)``.

    Each prompt starts from its longest cached prefix (``prefix_cache``; the reused keys and values are
    right-aligned before its new tokens) and rows of similar new length share a pass (:func:`_buckets`),
    so padding stays small. With one pass its cache (holes masked) is the decoding cache; with several,
    the rows' keys and values are right-aligned into one. With ``prefix_cache`` each row's are also kept
    for later calls. The passes run through ``model`` (the cache a ``DynamicCache``) or, given a fused
    ``decoder`` (:mod:`~agentrm_gym.agents.decode`), through it (a ``StaticKVCache`` with ``room`` free
    columns for decoding).
    """
    import torch
    from transformers import DynamicCache

    cache_kw, last_only = _forward_signature(type(model))
    extra = {"logits_to_keep": 1} if last_only else {}
    if decoder is not None:
        from agentrm_gym.agents.decode import StaticKVCache
    hits = [prefix_cache.longest(p) if prefix_cache is not None else (0, None) for p in prompt_ids]
    # the last prompt token is always fed, for the next-token logits
    reuse = [min(r, max(0, len(p) - 1)) for (r, _), p in zip(hits, prompt_ids, strict=True)]
    groups = [sorted(g) for g in _buckets([len(p) - r for p, r in zip(prompt_ids, reuse, strict=True)])]
    logits: list[Any] = [None] * len(prompt_ids)
    row_kv: list[KV] = [[] for _ in prompt_ids]
    for group in groups:
        past = max(reuse[i] for i in group)
        width = max(1, max(len(prompt_ids[i]) - reuse[i] for i in group))
        ids = torch.full((len(group), width), pad, dtype=torch.long)
        mask = torch.zeros((len(group), past + width), dtype=torch.long)
        positions = torch.zeros((len(group), width), dtype=torch.long)
        for j, i in enumerate(group):
            p, r = prompt_ids[i], reuse[i]
            if len(p) > r:
                ids[j, width - len(p) + r:] = torch.tensor(list(p[r:]), dtype=torch.long)
                mask[j, past + width - len(p) + r:] = 1
                positions[j, width - len(p) + r:] = torch.arange(r, len(p))
            mask[j, past - r:past] = 1
        reused = [[(k[:, :reuse[i]], v[:, :reuse[i]]) for k, v in hits[i][1]] if reuse[i] else None for i in group]
        if decoder is not None:
            cache = StaticKVCache.allocate(decoder, len(group), past + width + (room if len(groups) == 1 else 0),
                                           device)
            if past:
                cache.write_rows(reused, past)
            last = decoder.prefill(ids.to(device), positions.to(device), mask.to(device), cache)
        else:
            cache = _stack(reused, past, DynamicCache()) if past else DynamicCache()
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                        position_ids=positions.to(device), use_cache=True, **{cache_kw: cache}, **extra)
            cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None) or cache
            last = out.logits[:, -1, :].float()
        for j, i in enumerate(group):
            logits[i] = last[j]
        if prefix_cache is None and len(groups) == 1:
            break  # nothing to keep, nothing to merge: this pass's cache decodes
        layers = _layers(cache) if decoder is None else []
        for j, i in enumerate(group):
            # an empty prompt keeps its (masked) pad position, so every row has a cache entry to decode on
            valid = (mask[j].nonzero()[:, 0] if prompt_ids[i] else torch.tensor([past + width - 1])).to(device)
            row_kv[i] = (cache.row(j, valid) if decoder is not None
                         else [(k[j].index_select(1, valid), v[j].index_select(1, valid)) for k, v in layers])
    if prefix_cache is not None:
        for p, kv in zip(prompt_ids, row_kv, strict=True):
            if p:
                prefix_cache.put(p, kv)
        prefix_cache.count(reuse, sum(len(p) for p in prompt_ids))
    if len(groups) > 1:
        width = max(1, max(len(p) for p in prompt_ids))
        mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
        for i, p in enumerate(prompt_ids):
            mask[i, width - len(p):] = 1 if p else 0
        if decoder is not None:
            cache = StaticKVCache.allocate(decoder, len(prompt_ids), width + room, device)
            cache.write_rows(row_kv, width)
        else:
            cache = _stack(row_kv, width, DynamicCache())
    next_pos = torch.tensor([[len(p)] for p in prompt_ids], dtype=torch.long)
    return torch.stack(logits), cache, mask, next_pos


def _stack(rows: Sequence[KV | None], width: int, cache: Any) -> Any:
    """Fill ``cache`` with the rows' per-layer keys and values right-aligned to ``width`` positions
    (zeros before them, where the attention mask is 0; ``None``: a row with nothing to reuse)."""
    template = next(kv for kv in rows if kv)
    for layer, (k0, v0) in enumerate(template):
        keys = k0.new_zeros((len(rows), k0.shape[0], width, k0.shape[2]))
        values = v0.new_zeros((len(rows), v0.shape[0], width, v0.shape[2]))
        for j, kv in enumerate(rows):
            if kv:
                n = kv[layer][0].shape[1]
                keys[j, :, width - n:] = kv[layer][0]
                values[j, :, width - n:] = kv[layer][1]
        cache.update(keys, values, layer)
    return cache


class _ModuleDecoding:
    """The decoding loop's state through ``model.forward`` (any causal LM): its ``DynamicCache``, the
    attention mask (one column more each step) and the next position ids. ``rows``: each row's prompt."""

    def __init__(self, model: Any, cache: Any, mask: Any, next_positions: Any, rows: Any, device: Any):
        import torch

        self.model, self.cache_kw = model, _cache_kwarg(model)
        if not torch.equal(rows, torch.arange(mask.shape[0], device=rows.device)):
            cache.batch_select_indices(rows)
        self.cache = cache
        self.mask = mask.to(device)[rows]
        self.next_pos = next_positions.to(device)[rows]

    def select(self, index: Any) -> None:
        self.cache.batch_select_indices(index)
        self.mask, self.next_pos = self.mask[index], self.next_pos[index]

    def step(self, token_ids: Any) -> Any:
        """Logits ``[rows, vocab]`` after feeding one token a row (``token_ids`` ``[rows]``)."""
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
        out = self.model(input_ids=token_ids[:, None], attention_mask=self.mask, position_ids=self.next_pos,
                         use_cache=True, **{self.cache_kw: self.cache})
        self.cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None) or self.cache
        self.next_pos = self.next_pos + 1
        return out.logits[:, -1, :].float()


@functools.cache
def _forward_signature(model_class: type) -> tuple[str, bool]:
    """``(cache keyword, takes logits_to_keep)`` of a model class's ``forward``: ``cache`` in transformers
    >= 5 (``past_key_values`` is deprecated there), ``past_key_values`` before; ``logits_to_keep=1`` (only
    the last position's logits) where the class takes it."""
    import inspect

    params = inspect.signature(model_class.forward).parameters
    return ("cache" if "cache" in params else "past_key_values"), "logits_to_keep" in params


def _cache_kwarg(model: Any) -> str:
    """The keyword a model's ``forward`` takes its KV cache under."""
    return _forward_signature(type(model))[0]


def sample_continuations(
    model: Any, tokenizer: Any, prompt_ids: Sequence[Sequence[int]], n: int, temperature: float,
    max_new_tokens: int, stop: Sequence[str] = (), top_p: float = 1.0, counts: Sequence[int] | None = None,
    prefix_cache: PrefixCache | None = None, fused: bool = True,
) -> list[list[RawSample]]:
    """Continuations of each prompt (token ids): ``n`` each, or ``counts[i]`` for prompt ``i``.

    ``temperature <= 0`` is greedy: one row per prompt, repeated. ``prefix_cache`` resumes prompts from
    earlier calls' KV caches (see the module docstring). ``fused`` decodes with the fused step of
    :mod:`~agentrm_gym.agents.decode` where the model supports it (the same logits, bit for bit; ``False``:
    always through ``model.forward``). Returns one list of :class:`RawSample` per prompt.
    """
    import torch

    from agentrm_gym.agents.decode import FusedDecoding, fused_decoder

    if not prompt_ids:
        return []
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    eos = tokenizer.eos_token_id
    greedy = temperature <= 0
    want = list(counts) if counts is not None else [n] * len(prompt_ids)
    reps = [1 if greedy else k for k in want]
    rows = sum(reps)
    if not rows:
        return [[] for _ in prompt_ids]
    tokens: list[list[int]] = [[] for _ in range(rows)]
    logps: list[list[float]] = [[] for _ in range(rows)]
    stopped = [False] * rows
    starters = stop_start_ids(tokenizer, stop) if stop else None
    last_starter = [-STOP_WINDOW - 1] * rows  # position of each row's newest token holding a stop's first char
    if prefix_cache is not None:
        prefix_cache.check(model)
    decoder = fused_decoder(model) if fused else None
    with torch.inference_mode():
        logits, cache, mask, positions = _encode(model, prompt_ids, pad, device, prefix_cache, decoder,
                                                 max_new_tokens)
        expand = torch.tensor([i for i, k in enumerate(reps) for _ in range(k)], dtype=torch.long, device=device)
        if decoder is not None:
            decoding: Any = FusedDecoding(decoder, cache, mask, positions, expand, max_new_tokens)
        else:
            decoding = _ModuleDecoding(model, cache, mask, positions, expand, device)
        logits = logits[expand]
        active = list(range(rows))  # row index of each batch slot
        for _ in range(max_new_tokens):
            logp_all = torch.log_softmax(logits, dim=-1)
            if greedy:
                chosen = logits.argmax(dim=-1)
            else:
                scaled = _top_p_filter(torch, logits / float(temperature), top_p)
                chosen = torch.multinomial(torch.softmax(scaled, dim=-1), 1)[:, 0]
            picked = logp_all.gather(-1, chosen[:, None])[:, 0].tolist()
            chosen_list = chosen.tolist()
            keep: list[int] = []
            for slot, row in enumerate(active):
                tok = chosen_list[slot]
                if eos is not None and tok == eos:
                    stopped[row] = True
                    continue
                tokens[row].append(tok)
                logps[row].append(picked[slot])
                if starters is None or tok in starters:
                    last_starter[row] = len(tokens[row]) - 1
                if stop and len(tokens[row]) - 1 - last_starter[row] < STOP_WINDOW and any(
                        s in tokenizer.decode(tokens[row][-STOP_WINDOW:], skip_special_tokens=True) for s in stop):
                    stopped[row] = True
                    continue
                keep.append(slot)
            if not keep or len(tokens[active[keep[0]]]) >= max_new_tokens:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, dtype=torch.long, device=device)
                decoding.select(index)
                chosen = chosen[index]
                active = [active[s] for s in keep]
            logits = decoding.step(chosen)
    samples = [RawSample(tokens[r], logps[r], stopped[r]) for r in range(rows)]
    out, start = [], 0
    for k, w in zip(reps, want, strict=True):
        out.append(samples[start:start + k] * (w if greedy else 1))
        start += k
    return out
