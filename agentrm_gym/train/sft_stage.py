"""Stage 2, SFT (the pipeline stage): a byte-level BPE tokenizer and a tiny GPT-2 trained on expert dialogues.

The model (:func:`agentrm_gym.agents.tiny.build_tiny_model`) learns the assistant turns only: the records
are encoded by :func:`agentrm_gym.train.sft_trainer.encode_record` (labels -100 outside assistant turns;
the trainer's step is :func:`~agentrm_gym.train.sft_trainer.sft_step`) and the loss is
L = -(1/|A|) sum_{t in A} log p(x_t | x_<t). This module adds what a pipeline stage needs around that:
the records the policy will actually see (below), a linear warm-up + cosine schedule, a tqdm bar,
TensorBoard scalars (``losses/sft``, ``charts/lr``) and a throughput probe.

**Records.** At test time the prompt is cut to ``context - max_new_tokens`` tokens by dropping old
turns (:class:`~agentrm_gym.agents.prompts.CompactPromptBuilder`, a few at a time). Training on a whole
long episode left-cut to the context would teach a different view (no goal), so each episode gives the
prompts of the steps whose prompt the next step's prompt does not extend: the last step before each cut
(one record for an episode that fits).

Writes ``<run>/sft/policy`` (a Hugging Face directory: load with ``make_policy(path)``) and
``<run>/sft/done.json`` (final loss, parameters, tokens/s of batched sampling).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from agentrm_gym.agents.prompts import CompactPromptBuilder, messages_to_sharegpt, through_last_turn
from agentrm_gym.files import kill_point, write_dir_atomic
from agentrm_gym.rm.backbones import training_threads
from agentrm_gym.train.common import begin_stage, tb_writer
from agentrm_gym.train.config import PipelineConfig
from agentrm_gym.trajectory import Trajectory, read_jsonl


def window_records(trajs: list[Trajectory], builder: CompactPromptBuilder) -> list[dict[str, Any]]:
    """ShareGPT records of the prompts the policy sees (see the module docstring), ending with its turn."""
    records = []
    for traj in trajs:
        n = len(traj.steps)
        nxt = through_last_turn(builder.messages(traj.state(1))) if n else []
        for t in range(n):
            msgs, nxt = nxt, through_last_turn(builder.messages(traj.state(t + 2))) if t < n - 1 else []
            if nxt[:len(msgs)] == msgs:
                continue  # the next step's prompt holds this one whole
            records.append(messages_to_sharegpt(msgs, f"{traj.task}_{traj.task_id}_{t}"))
    return records


def train_policy(model: Any, tokenizer: Any, records: list[dict[str, Any]], steps: int, batch_size: int,
                 lr: float, max_length: int, seed: int, writer: Any = None) -> list[float]:
    """AdamW on the assistant tokens of ``records`` with warm-up and cosine decay; returns the losses."""
    import torch

    from agentrm_gym.train.sft_trainer import encode_record, sft_step

    data = [encode_record(r, tokenizer, max_length) for r in records]
    data = [d for d in data if any(y != -100 for y in d[1])]
    if not data:
        raise ValueError("no SFT record has an assistant token inside the context; raise --context")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warm:
            return lr * (step + 1) / warm
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

    model.train()
    losses: list[float] = []
    bar = tqdm(range(steps), desc="sft", leave=False)
    with training_threads():  # the weights of a seed, whatever the threads setting
        for step in bar:
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            idx = torch.randint(len(data), (batch_size,), generator=gen).tolist()
            losses.append(sft_step(model, opt, [data[i] for i in idx], pad))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if writer is not None:
                writer.add_scalar("losses/sft", losses[-1], step)
                writer.add_scalar("charts/lr", lr_at(step), step)
    model.eval()
    return losses


def make_pipeline_policy(path: str | Path, cfg: PipelineConfig, seed: int | None = None) -> Any:
    """The SFT policy behind the pipeline's compact prompt, cut to ``context - max_new_tokens`` tokens.

    ``cfg.policy`` may also name a served policy, ``openai:URL#model`` (e.g. ``vllm serve``) or
    ``vllm:MODEL`` (in-process on a GPU); those keep their own prompt budget.
    """
    if str(path).startswith(("openai:", "vllm:")):
        from agentrm_gym.agents.factory import make_policy

        served = make_policy(str(path), seed=seed, max_new_tokens=cfg.max_new_tokens, builder=CompactPromptBuilder())
        served.grounding = cfg.action_grounding
        return served
    from agentrm_gym.agents.hf import TransformersPolicy

    policy = TransformersPolicy(str(path), device=None, builder=CompactPromptBuilder(),
                                max_new_tokens=cfg.max_new_tokens, seed=seed, grounding=cfg.action_grounding)
    policy.builder.budget = policy.engine.context_length - cfg.max_new_tokens
    policy.builder.count = policy.engine.count_tokens
    return policy


def measure_throughput(policy: Any, trajs: list[Trajectory], n: int = 5, prompts: int = 4) -> dict[str, float]:
    """Generated tokens per second of greedy (1 prompt) and batched sampling (``n`` samples of ``prompts``)."""
    states = [t.state(min(2, len(t.steps))) for t in trajs[:: max(1, len(trajs) // prompts)][:prompts]]
    if not states:
        return {}
    out: dict[str, float] = {}
    policy.propose_batch(states[:1], 1, 0.0)  # warm-up (first-call allocations)
    t0 = time.perf_counter()
    toks = sum(p.num_tokens for row in policy.propose_batch(states[:1], 1, 0.0) for p in row)
    out["greedy_tokens_per_s"] = toks / max(1e-6, time.perf_counter() - t0)
    t0 = time.perf_counter()
    toks = sum(p.num_tokens for row in policy.propose_batch(states, n, 1.0) for p in row)
    dt = time.perf_counter() - t0
    out["sampled_tokens_per_s"] = toks / max(1e-6, dt)
    out["sampled_turns_per_s"] = len(states) * n / max(1e-6, dt)
    out["prompt_tokens_mean"] = float(np.mean([policy.engine.count_tokens(p) for p in policy.prompts(states)]))
    return out


def run_sft(cfg: PipelineConfig, root: str | Path) -> dict[str, Any]:
    """Train (or adopt ``cfg.policy``) and save the policy; returns the stage summary."""
    stage = begin_stage(root, "sft", threads=cfg.threads)
    if stage.done:
        return stage.summary
    out = stage.out
    trajs = [Trajectory.from_dict(r) for r in read_jsonl(Path(root) / "expert" / "trajectories.jsonl")]
    if cfg.policy:
        summary: dict[str, Any] = {"policy": str(cfg.policy), "trained": False}
        policy = make_pipeline_policy(cfg.policy, cfg, seed=cfg.seed)
        summary.update(measure_throughput(policy, trajs))
        return stage.finish(summary)
    from agentrm_gym.agents.tiny import build_tiny_model, env_corpus, train_tokenizer

    builder = CompactPromptBuilder()
    corpus = env_corpus(trajs, builder)
    tokenizer = train_tokenizer(corpus, cfg.vocab_size)
    model = build_tiny_model(tokenizer, n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head,
                             n_positions=cfg.context, seed=cfg.seed)
    builder.budget = cfg.context - cfg.max_new_tokens
    builder.count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    records = window_records(trajs, builder)
    writer = tb_writer(root, "sft")
    t0 = time.time()
    losses = train_policy(model, tokenizer, records, cfg.sft_steps, cfg.sft_batch_size, cfg.sft_lr, cfg.context,
                          cfg.seed, writer)
    train_seconds = time.time() - t0
    def save(tmp: Path) -> None:
        model.save_pretrained(tmp)
        kill_point("sft-save")  # the weights written, the tokenizer not yet
        tokenizer.save_pretrained(tmp)

    policy_dir = write_dir_atomic(out / "policy", save)
    policy = make_pipeline_policy(policy_dir, cfg, seed=cfg.seed)
    speed = measure_throughput(policy, trajs)
    if writer is not None:
        for k, v in speed.items():
            writer.add_scalar(f"charts/{k}", v, 0)
        writer.close()
    summary = {
        "policy": str(policy_dir), "trained": True, "records": len(records), "steps": cfg.sft_steps,
        "loss_first": losses[0], "loss_last": float(np.mean(losses[-10:])), "train_seconds": round(train_seconds, 1),
        "parameters": int(sum(p.numel() for p in model.parameters())), **speed,
    }
    return stage.finish(summary)
