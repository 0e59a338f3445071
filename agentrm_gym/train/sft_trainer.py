"""The SFT trainer: supervised fine-tuning of a causal LM on ShareGPT agent dialogues (loss on assistant tokens).

The pipeline's SFT *stage* (records, schedule, run directory) is :mod:`agentrm_gym.train.sft_stage`; this
module is the step, the loss and the encoding it uses (:func:`encode_record`, :func:`sft_step`,
:func:`sft_train`), plus :func:`build_sft_tiny_policy` (the tiny policy of the tests, fine-tuned).

Each record ``{"id", "conversations": [{"from": "human"|"gpt", "value"}]}`` is rendered with the
tokenizer's chat template (the plain format of :mod:`agentrm_gym.agents.prompts` otherwise); the
tokens of every prefix that ends before an assistant message are masked (label -100), so the loss
is the mean negative log-likelihood of the assistant turns ("Thought: ...\\nAction: ...") and the
end-of-turn token:  L = -(1/|A|) * sum_{t in A} log p(x_t | x_<t).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentrm_gym.agents.prompts import render, sharegpt_to_messages


def encode_record(record: dict[str, Any], tokenizer: Any, max_length: int) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of one dialogue, labels -100 outside assistant turns, left-cut to ``max_length``."""
    messages = sharegpt_to_messages(record)
    ids: list[int] = []
    labels: list[int] = []
    done = ""
    for i in range(len(messages)):
        text = render(messages[: i + 1], tokenizer, add_generation_prompt=False)
        if not text.startswith(done):  # a template that rewrites earlier turns: fall back to whole-text deltas
            done = ""
        piece = tokenizer(text[len(done):], add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if messages[i]["role"] == "assistant" else [-100] * len(piece)
        done = text
    return ids[-max_length:], labels[-max_length:]


def sft_train(model: Any, tokenizer: Any, records: Sequence[dict[str, Any]], steps: int = 100,
              batch_size: int = 4, lr: float = 3e-3, max_length: int | None = None, seed: int = 0) -> list[float]:
    """Train ``model`` in place for ``steps`` AdamW steps; returns the loss of each step."""
    import torch

    if not records:
        raise ValueError("sft_train needs at least one record")
    max_length = max_length or int(getattr(model.config, "n_positions", 1024))
    data = [encode_record(r, tokenizer, max_length) for r in records]
    gen = torch.Generator().manual_seed(seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(data), (batch_size,), generator=gen).tolist()
        losses.append(sft_step(model, opt, [data[i] for i in idx], pad))
    model.eval()
    return losses


def sft_step(model: Any, opt: Any, batch: list[tuple[list[int], list[int]]], pad: int) -> float:
    """One AdamW step on encoded ``(input_ids, labels)`` records (right-padded; labels -100 off the
    assistant tokens), gradient norm clipped to 1; returns the loss."""
    import torch

    width = max(len(x) for x, _ in batch)
    inp = torch.full((len(batch), width), pad)
    lab = torch.full((len(batch), width), -100)
    att = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (x, y) in enumerate(batch):
        inp[row, : len(x)] = torch.tensor(x)
        lab[row, : len(y)] = torch.tensor(y)
        att[row, : len(x)] = 1
    loss = model(input_ids=inp, attention_mask=att, labels=lab).loss
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return float(loss.detach())


def build_sft_tiny_policy(out_dir: str | os.PathLike, tasks: Sequence[str] = ("Maze",), episodes: int = 40,
                          vocab_size: int = 1024, seed: int = 0, sft_steps: int = 100, **model_kwargs: Any) -> Path:
    """:func:`~agentrm_gym.agents.tiny.build_tiny_policy` plus ``sft_steps`` of :func:`sft_train` on the
    oracle episodes (one-shot ETO prompts), saved to ``out_dir``."""
    from agentrm_gym.agents.prompts import PromptBuilder, to_sharegpt
    from agentrm_gym.agents.tiny import build_tiny_parts, save_policy

    model, tokenizer, trajs = build_tiny_parts(tasks, episodes, vocab_size, seed, **model_kwargs)
    if sft_steps > 0:
        builder = PromptBuilder()
        sft_train(model, tokenizer, [to_sharegpt(t, builder) for t in trajs], steps=sft_steps, seed=seed)
    return save_policy(model, tokenizer, out_dir)
