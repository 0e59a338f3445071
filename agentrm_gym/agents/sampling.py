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

The log-probability of each sampled token is taken under the raw logits (temperature 1), the same as
the ``generate`` path of :class:`~agentrm_gym.agents.hf.HFGenerator`. Sampling draws from torch's global
generator, so ``torch.manual_seed`` makes a run reproducible.
"""

from __future__ import annotations

import weakref
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


def _cache_kwarg(model: Any) -> str:
    """``cache`` in transformers >= 5 (``past_key_values`` is deprecated there), ``past_key_values`` before."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def sample_continuations(
    model: Any, tokenizer: Any, prompt_ids: Sequence[Sequence[int]], n: int, temperature: float,
    max_new_tokens: int, stop: Sequence[str] = (), top_p: float = 1.0, counts: Sequence[int] | None = None,
) -> list[list[RawSample]]:
    """Continuations of each prompt (token ids): ``n`` each, or ``counts[i]`` for prompt ``i``.

    ``temperature <= 0`` is greedy: one row per prompt, repeated. Returns one list of
    :class:`RawSample` per prompt.
    """
    import torch
    from transformers import DynamicCache

    if not prompt_ids:
        return []
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    eos = tokenizer.eos_token_id
    greedy = temperature <= 0
    want = list(counts) if counts is not None else [n] * len(prompt_ids)
    reps = [1 if greedy else k for k in want]
    width = max(1, max(len(p) for p in prompt_ids))
    ids = torch.full((len(prompt_ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for i, p in enumerate(prompt_ids):
        if p:
            ids[i, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
            mask[i, width - len(p):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    rows = sum(reps)
    tokens: list[list[int]] = [[] for _ in range(rows)]
    logps: list[list[float]] = [[] for _ in range(rows)]
    stopped = [False] * rows
    starters = stop_start_ids(tokenizer, stop) if stop else None
    last_starter = [-STOP_WINDOW - 1] * rows  # position of each row's newest token holding a stop's first char
    cache_kw = _cache_kwarg(model)
    with torch.inference_mode():
        cache = DynamicCache()
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                    use_cache=True, **{cache_kw: cache})
        cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None) or cache
        logits = out.logits[:, -1, :].float()
        if rows != len(prompt_ids):
            expand = torch.tensor([i for i, k in enumerate(reps) for _ in range(k)], dtype=torch.long)
            cache.batch_select_indices(expand.to(device))
            logits, mask, positions = logits[expand.to(device)], mask[expand], positions[expand]
        mask = mask.to(device)
        next_pos = positions[:, -1:].to(device) + 1
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
                cache.batch_select_indices(index)
                mask, next_pos, chosen = mask[index], next_pos[index], chosen[index]
                active = [active[s] for s in keep]
            mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=device)], dim=1)
            out = model(input_ids=chosen[:, None], attention_mask=mask, position_ids=next_pos,
                        use_cache=True, **{cache_kw: cache})
            cache = getattr(out, "past_key_values", None) or getattr(out, "cache", None) or cache
            logits = out.logits[:, -1, :].float()
            next_pos = next_pos + 1
    samples = [RawSample(tokens[r], logps[r], stopped[r]) for r in range(rows)]
    out, start = [], 0
    for k, w in zip(reps, want, strict=True):
        out.append(samples[start:start + k] * (w if greedy else 1))
        start += k
    return out
