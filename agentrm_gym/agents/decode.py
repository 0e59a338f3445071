"""A fused forward pass for the GPT-2 policies this project trains: a static KV cache, no module dispatch.

The policy of :mod:`agentrm_gym.agents.tiny` (and of the pipeline's SFT stage) is a ``GPT2LMHeadModel`` of
0.7M parameters. One decoding pass of it is ~1.8 MFLOP a row, so through the ``transformers`` modules its
cost is mostly the machinery around the arithmetic: ~70 ``nn.Module`` calls, the mask builder, a
``DynamicCache`` that concatenates every layer's keys and values at every token. :class:`GPT2Decoder` runs
the same arithmetic straight on the model's own weight tensors (no copies: an optimiser step or
``load_state_dict`` is seen at the next call), for the prompt passes (:meth:`GPT2Decoder.prefill`) and for
every decoding step (:class:`FusedDecoding`):

* one :class:`StaticKVCache` per sampler call, a tensor ``[layers, 2, rows, heads, max_len, head_dim]`` with
  room for every new token; a pass writes its keys and values in place after the filled columns and
  attends over them;
* left padding and prompts of different lengths as one additive mask ``[rows, 1, 1, max_len]`` made once
  per call (none where no row is padded); every step's position embeddings looked up once per call;
* GPT-2's fused QKV projection (``c_attn``, one ``addmm``), ``scaled_dot_product_attention``, and every
  other operation the one the ``transformers`` ``sdpa`` module runs, in the same order and on the same
  shapes (its ``NewGELU`` op for op: ``F.gelu(approximate="tanh")`` differs in the last bit), so the keys,
  values and logits are bit-identical to the module forward and sampling from them draws exactly what the
  module path draws (tests/test_decode.py).

``torch.compile`` of the step was measured on this CPU (``benchmarks/policy_throughput.py --compile``:
slower than eager at batch 1 and 5, and no longer bit-identical) and is not used.

:func:`fused_decoder` returns ``None`` for any other model (another architecture, cross-attention, eager
attention, a model in training mode, wrapped layers such as LoRA adapters): the sampler then runs the
model's own ``forward`` (:mod:`agentrm_gym.agents.sampling`), so any Hugging Face causal LM (Llama-3,
Qwen...) still works, only without this shortcut.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: ``model_type`` s :func:`fused_decoder` accepts.
FUSED_MODEL_TYPES = ("gpt2",)


class StaticKVCache:
    """Keys and values of ``batch`` rows in one preallocated tensor, with each row's padding mask.

    ``kv[layer, 0 or 1, row, head, column, :]`` (keys 0, values 1); columns ``[0, length)`` are filled,
    rows left-padded; a forward pass writes its tokens' keys and values at ``[length, length + T)``.
    ``mask`` is additive (``0`` or ``-inf``) over all ``max_len`` columns, 0 on the free ones (every live row
    writes there); ``padded`` says whether any row has a masked column (else no mask is passed, as the
    module forward passes none).
    """

    def __init__(self, kv: Any, length: int):
        self.kv = kv
        self.length = length
        self.mask: Any = None
        self.padded = False

    @classmethod
    def allocate(cls, decoder: GPT2Decoder, batch: int, max_len: int, device: Any) -> StaticKVCache:
        """An empty cache; columns are filled by :meth:`write_rows` and forward passes."""
        import torch

        kv = torch.empty((len(decoder.layers), 2, batch, decoder.heads, max_len, decoder.head_dim),
                         dtype=decoder.wte.dtype, device=device)
        return cls(kv, 0)

    @property
    def max_len(self) -> int:
        return self.kv.shape[4]

    def write_rows(self, rows: Sequence[Sequence[tuple[Any, Any]] | None], width: int) -> None:
        """Fill columns ``[0, width)`` with each row's per-layer ``(keys, values)`` ``[heads, n, head_dim]``
        right-aligned, zeros before them (``None``: a row with nothing); ``length`` becomes ``width``."""
        for j, row in enumerate(rows):
            n = row[0][0].shape[1] if row else 0
            if n < width:  # masked columns, but attention multiplies them by 0: they must be finite
                self.kv[:, :, j, :, :width - n].zero_()
            for i, (keys, values) in enumerate(row or ()):
                self.kv[i, 0, j, :, width - n:width] = keys
                self.kv[i, 1, j, :, width - n:width] = values
        self.length = width

    def row(self, j: int, columns: Any) -> list[tuple[Any, Any]]:
        """Row ``j``'s per layer ``(keys, values)`` ``[heads, len(columns), head_dim]`` at ``columns`` (a long
        tensor): views of one copy, made by one ``index_select``."""
        kv = self.kv[:, :, j].index_select(3, columns)
        return [(kv[i, 0], kv[i, 1]) for i in range(len(kv))]

    def layers(self) -> list[tuple[Any, Any]]:
        """Per layer ``(keys, values)`` views ``[batch, heads, length, head_dim]`` of the filled columns."""
        return [(self.kv[i, 0, :, :, :self.length], self.kv[i, 1, :, :, :self.length]) for i in range(len(self.kv))]

    def set_padding(self, attention_mask: Any) -> None:
        """The rows' padding from ``attention_mask`` ``[batch, length]`` (1 where a row has a token)."""
        import torch

        holes = attention_mask.to(self.kv.device)[:, :self.length] == 0
        self.mask = torch.zeros((self.kv.shape[2], 1, 1, self.max_len), dtype=self.kv.dtype, device=self.kv.device)
        self.mask[:, 0, 0, :self.length].masked_fill_(holes, float("-inf"))
        self.padded = bool(holes.any())

    def select(self, index: Any) -> None:
        """Keep only the rows ``index`` (a long tensor), in that order."""
        self.kv = self.kv.index_select(2, index)
        if self.mask is not None:
            self.mask = self.mask.index_select(0, index)
            self.padded = bool((self.mask != 0).any())


class GPT2Decoder:
    """The forward pass of a ``GPT2LMHeadModel`` over a :class:`StaticKVCache`, on the model's weights.

    Made by :func:`fused_decoder`; cheap to make (it only collects references to the weight tensors), so
    the sampler makes one per call and a change of the weights between calls is always seen.
    """

    def __init__(self, model: Any):
        import torch.nn.functional as F

        self.F = F
        cfg = model.config
        t = model.transformer
        self.wte, self.wpe = t.wte.weight, t.wpe.weight
        self.width = cfg.n_embd
        self.heads = cfg.n_head
        self.head_dim = cfg.n_embd // cfg.n_head
        self.eps = cfg.layer_norm_epsilon
        self.new_gelu = type(t.h[0].mlp.act).__name__ == "NewGELUActivation"
        self.layers = [(b.ln_1.weight, b.ln_1.bias, b.attn.c_attn.weight, b.attn.c_attn.bias, b.attn.c_proj.weight,
                        b.attn.c_proj.bias, b.ln_2.weight, b.ln_2.bias, b.mlp.c_fc.weight, b.mlp.c_fc.bias,
                        b.mlp.c_proj.weight, b.mlp.c_proj.bias, float(b.attn.scaling), b.mlp.act) for b in t.h]
        self.ln_f = (t.ln_f.weight, t.ln_f.bias)
        self.lm_head = (model.lm_head.weight, model.lm_head.bias)

    def position_embeddings(self, positions: Any) -> Any:
        """``wpe`` rows of ``positions`` (any shape of long ids); looked up once per call for all steps."""
        return self.F.embedding(positions, self.wpe)

    def _act(self, x: Any, act: Any) -> Any:
        if not self.new_gelu:
            return act(x)
        import torch

        # transformers' NewGELUActivation, op for op (F.gelu(approximate="tanh") differs in the last bit)
        inner = torch.pow(x, 3.0).mul_(0.044715).add_(x).mul_(math.sqrt(2.0 / math.pi)).tanh_().add_(1.0)
        return x.mul(0.5).mul_(inner)

    def forward(self, token_ids: Any, position_embeds: Any, cache: StaticKVCache, attn_mask: Any = None,
                is_causal: bool = False) -> Any:
        """Logits ``[batch, vocab]`` (float32) at the last of ``token_ids`` ``[batch, T]``.

        ``position_embeds`` ``[batch, T, width]`` are the tokens' position embeddings; their keys and values
        are written to ``cache`` at its next ``T`` columns and ``cache.length`` advances. ``attn_mask``
        (additive, ``[batch, 1, T, length + T]``) or ``is_causal`` say what each token attends to, as in
        ``scaled_dot_product_attention``; with neither every token sees every filled column.
        """
        import torch

        F = self.F
        batch, new = token_ids.shape
        start, end = cache.length, cache.length + new
        if end > cache.max_len:
            raise ValueError(f"the static KV cache holds {cache.max_len} positions; {end} do not fit")
        width, heads, hd = self.width, self.heads, self.head_dim
        # torch.layer_norm / torch.embedding: the kernels F.* call, without their Python wrappers
        x = torch.embedding(self.wte, token_ids) + position_embeds
        for i, (w1, b1, wqkv, bqkv, wo, bo, w2, b2, wfc, bfc, wproj, bproj, scale, act) in enumerate(self.layers):
            h = torch.layer_norm(x, (width,), w1, b1, self.eps)
            qkv = torch.addmm(bqkv, h.view(-1, width), wqkv).view(batch, new, 3, heads, hd)
            kv = cache.kv[i]
            kv[:, :, :, start:end] = qkv[:, :, 1:].permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(qkv[:, :, 0].transpose(1, 2), kv[0, :, :, :end], kv[1, :, :, :end],
                                               attn_mask=attn_mask, scale=scale, is_causal=is_causal)
            a = a.transpose(1, 2).reshape(batch * new, width)
            x = torch.addmm(bo, a, wo).view(batch, new, width) + x
            h = torch.layer_norm(x, (width,), w2, b2, self.eps)
            h = self._act(torch.addmm(bfc, h.view(-1, width), wfc), act)
            x = x + torch.addmm(bproj, h, wproj).view(batch, new, width)
        cache.length = end
        x = torch.layer_norm(x[:, -1:], (width,), self.ln_f[0], self.ln_f[1], self.eps)
        return F.linear(x, *self.lm_head)[:, -1].float()

    def prefill(self, token_ids: Any, positions: Any, attention_mask: Any, cache: StaticKVCache) -> Any:
        """A prompt pass: logits ``[batch, vocab]`` at the last of ``token_ids`` ``[batch, T]`` (position ids
        ``positions``), written after the ``cache.length`` columns already in ``cache``.

        ``attention_mask`` ``[batch, length + T]`` (1: a token) with the causal rule gives each token's
        view, the mask ``transformers`` builds for ``sdpa`` (none, ``is_causal``, where it builds none), so
        the keys, values and logits are the module's bit for bit (a padding token that sees nothing gets
        ``sdpa``'s zeros there and here; an empty prompt's "logits" are those of its padding).
        """
        import torch

        past, new = cache.length, token_ids.shape[1]
        valid = attention_mask.to(token_ids.device).bool()
        mask, causal = None, new > 1
        if not ((new == 1 or past == 0) and bool(valid.all())):
            columns = torch.arange(past + new, device=token_ids.device)
            rows = columns[past:, None]
            allowed = valid[:, None, :] & (columns[None, :] <= rows)
            mask = torch.zeros(allowed.shape, dtype=self.wte.dtype, device=token_ids.device)
            mask = mask.masked_fill_(~allowed, float("-inf"))[:, None]
            causal = False
        return self.forward(token_ids, self.position_embeddings(positions), cache, mask, causal)


def fused_decoder(model: Any) -> GPT2Decoder | None:
    """A :class:`GPT2Decoder` for ``model``, or ``None`` where the fused step does not apply (the sampler
    then decodes through ``model.forward``): not a plain ``GPT2LMHeadModel`` (another architecture, wrapped
    layers), cross-attention, ``reorder_and_upcast_attn``, an attention implementation other than
    ``sdpa`` (the fused step is op for op the ``sdpa`` one), or a model in training mode (dropout)."""
    cfg = getattr(model, "config", None)
    if (cfg is None or getattr(cfg, "model_type", None) not in FUSED_MODEL_TYPES
            or type(model).__name__ != "GPT2LMHeadModel" or model.training
            or getattr(cfg, "add_cross_attention", False) or getattr(cfg, "reorder_and_upcast_attn", False)
            or getattr(cfg, "_attn_implementation", None) != "sdpa"):
        return None
    t = getattr(model, "transformer", None)
    if t is None or not hasattr(model, "lm_head") or type(model.lm_head).__name__ != "Linear":
        return None
    for b in t.h:  # plain Conv1D projections only (a LoRA or quantised wrapper has its own forward)
        if any(type(m).__name__ != "Conv1D" for m in (b.attn.c_attn, b.attn.c_proj, b.mlp.c_fc, b.mlp.c_proj)):
            return None
    return GPT2Decoder(model)


class FusedDecoding:
    """The decoding loop's state on the fused path, with the same interface as the sampler's module path:
    ``step(token_ids)`` -> next logits, ``select(index)`` keeps the live rows.

    Args:
        decoder: from :func:`fused_decoder`.
        cache: the prompts' :class:`StaticKVCache` (the prompt pass's, with room for ``steps`` more columns).
        attention_mask: ``[prompts, cache.length]``, 1 where a prompt has a token.
        next_positions: ``[prompts, 1]``, each prompt's first new position.
        rows: the prompt of each decoded row (long tensor; Best-of-N repeats a prompt's row).
        steps: the most tokens a row will be fed.
    """

    def __init__(self, decoder: GPT2Decoder, cache: StaticKVCache, attention_mask: Any, next_positions: Any,
                 rows: Any, steps: int):
        import torch

        self.decoder, self.cache = decoder, cache
        if cache.length + steps > cache.max_len:
            raise ValueError(f"the static KV cache holds {cache.max_len} columns, not {cache.length} + {steps}")
        if not torch.equal(rows, torch.arange(cache.kv.shape[2], device=rows.device)):
            cache.select(rows)
        cache.set_padding(attention_mask.to(rows.device).index_select(0, rows))
        first = next_positions.to(rows.device).index_select(0, rows)
        # every step's position ids, looked up once; a position past the table fails when it is reached,
        # as the module forward does
        self.limit = decoder.wpe.shape[0] - int(first.max())
        ids = (first + torch.arange(steps, device=first.device)).clamp_(max=decoder.wpe.shape[0] - 1)
        self.position_embeds = decoder.position_embeddings(ids)
        self.t = 0

    def select(self, index: Any) -> None:
        self.cache.select(index)
        self.position_embeds = self.position_embeds.index_select(0, index)

    def step(self, token_ids: Any) -> Any:
        """Logits ``[rows, vocab]`` after feeding one token a row (``token_ids`` ``[rows]``)."""
        if self.t >= self.limit:
            raise IndexError(f"position {self.t + self.decoder.wpe.shape[0] - self.limit} is past the model's "
                             f"{self.decoder.wpe.shape[0]} position embeddings: shorten the prompt or max_new_tokens")
        cache = self.cache
        mask = cache.mask[..., :cache.length + 1] if cache.padded else None
        logits = self.decoder.forward(token_ids[:, None], self.position_embeds[:, self.t:self.t + 1], cache, mask)
        self.t += 1
        return logits
