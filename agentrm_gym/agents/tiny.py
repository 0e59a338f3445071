"""A tiny GPT-2-style policy built from a config, with a byte-level BPE tokenizer trained on env text.

It builds in seconds on a CPU and is the default model of tests, benchmarks and the demo. It comes
untrained: training it is the trainers' job (:mod:`agentrm_gym.train.sft_trainer`, whose
``build_sft_tiny_policy`` also SFTs it on the oracle episodes, and the pipeline's SFT stage
:mod:`agentrm_gym.train.sft_stage`). Nothing is downloaded.

* :func:`env_corpus` - oracle episodes of some tasks rendered as prompts (the tokenizer's training text);
* :func:`train_tokenizer` - a ByteLevel BPE ``PreTrainedTokenizerFast`` with bos/eos/pad and the plain
  chat template of :mod:`agentrm_gym.agents.prompts`;
* :func:`build_tiny_model` - ``GPT2LMHeadModel`` from a small ``GPT2Config`` (2 layers, 128 wide);
* :func:`build_tiny_parts` / :func:`save_policy` - both plus the oracle episodes; one Hugging Face directory;
* :func:`build_tiny_policy` - both, saved as a Hugging Face directory (load with ``make_policy(path)``);
* :func:`tiny_policy_dir` - the same, built once into the cache.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from agentrm_gym.agents.prompts import (
    PLAIN_CHAT_TEMPLATE,
    PromptBuilder,
    render_plain,
    sharegpt_to_messages,
    to_sharegpt,
)
from agentrm_gym.trajectory import Trajectory

EOS = "<|endoftext|>"
PAD = "<|pad|>"


def oracle_episodes(tasks: Sequence[str] = ("Maze",), episodes: int = 40, split: str = "train",
                    seed: int = 0) -> list[Trajectory]:
    """Oracle trajectories of the first ``episodes`` tasks of each task's ``split``."""
    from agentrm_gym.agents.runner import oracle_trajectory
    from agentrm_gym.registry import make

    out = []
    for task in tasks:
        env = make(task, split=split)
        try:
            for task_id in env.unwrapped.task_ids(split)[:episodes]:
                out.append(oracle_trajectory(env, task_id, seed=seed))
        finally:
            env.close()
    return out


def env_corpus(trajectories: Iterable[Trajectory], builder: PromptBuilder | None = None) -> list[str]:
    """The prompts of ``trajectories`` in the plain chat format (tokenizer training text)."""
    builder = builder or PromptBuilder()
    return [render_plain(sharegpt_to_messages(to_sharegpt(t, builder)), add_generation_prompt=False, eos=EOS)
            for t in trajectories]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> Any:
    """A byte-level BPE tokenizer trained on ``texts`` (bos = eos = ``<|endoftext|>``, pad = ``<|pad|>``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=PAD,
                                   unk_token=None, model_max_length=1 << 20)
    fast.chat_template = PLAIN_CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def build_tiny_model(tokenizer: Any, n_layer: int = 2, n_embd: int = 128, n_head: int = 4,
                     n_positions: int = 2048, seed: int = 0) -> Any:
    """A randomly initialised ``GPT2LMHeadModel`` sized for ``tokenizer``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval()


def build_tiny_parts(tasks: Sequence[str] = ("Maze",), episodes: int = 40, vocab_size: int = 1024, seed: int = 0,
                     **model_kwargs: Any) -> tuple[Any, Any, list[Trajectory]]:
    """``(model, tokenizer, oracle trajectories)``: the tokenizer trained on oracle episodes, the model fresh."""
    trajs = oracle_episodes(tasks, episodes, seed=seed)
    tokenizer = train_tokenizer(env_corpus(trajs), vocab_size)
    model = build_tiny_model(tokenizer, seed=seed, **model_kwargs)
    return model, tokenizer, trajs


def save_policy(model: Any, tokenizer: Any, out_dir: str | os.PathLike) -> Path:
    """Save a model and its tokenizer as one Hugging Face directory (load with ``make_policy(path)``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_policy(out_dir: str | os.PathLike, tasks: Sequence[str] = ("Maze",), episodes: int = 40,
                      vocab_size: int = 1024, seed: int = 0, **model_kwargs: Any) -> Path:
    """Train the tokenizer on oracle episodes, build the (untrained) model, save both to ``out_dir``."""
    model, tokenizer, _ = build_tiny_parts(tasks, episodes, vocab_size, seed, **model_kwargs)
    return save_policy(model, tokenizer, out_dir)


def tiny_policy_dir(tasks: Sequence[str] = ("Maze",), seed: int = 0) -> Path:
    """:func:`build_tiny_policy` into ``cache_dir("models")``, built once (temp dir, then an atomic rename)."""
    from agentrm_gym.files import cache_dir

    root = cache_dir("models")
    final = root / f"tiny-{'-'.join(tasks)}-sft0-s{seed}"
    if (final / "config.json").exists():
        return final
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".building-"))
    try:
        build_tiny_policy(tmp, tasks, seed=seed)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first
            if not (final / "config.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
