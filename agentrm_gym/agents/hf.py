"""The ``transformers`` backend: any local causal-LM directory or Hub model id, on CPU or GPU.

:class:`HFGenerator` is the sampling engine (shared with ``agentrm serve policy``): by default the
shared-prompt KV-cache sampler of :mod:`~agentrm_gym.agents.sampling` (each distinct prompt encoded once
for all its samples, each row stopped at its own end, each prompt resumed from the longest prefix it
shares with a recent prompt; a GPT-2 policy decodes with the fused step of
:mod:`~agentrm_gym.agents.decode`); ``mode="generate"`` uses ``transformers``'
``generate`` instead (all ``n`` samples in one call, ``num_return_sequences``). Both return stop-string
cut samples with the sequence log-probability under the model (raw logits, i.e. temperature 1).
:class:`TransformersPolicy` puts the prompt builder and the parser around it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentrm_gym.agents.policy import Generation, LLMPolicy
from agentrm_gym.agents.prompts import STOP_STRINGS, PromptBuilder
from agentrm_gym.core import AgentRMGymError
from agentrm_gym.extras import require_extra
from agentrm_gym.trajectory import AgentState


def _require_torch() -> Any:
    return require_extra(("torch", "transformers"), "llm", "the transformers backend")


def load_model(path: str, device: str | None = None, dtype: Any = None) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from a directory or model id, ready for left-padded batch generation."""
    torch = _require_torch()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = _load_part(path, "tokenizer", lambda: AutoTokenizer.from_pretrained(path))
    kwargs = {"dtype": dtype} if dtype else {}
    model = _load_part(path, "weights", lambda: AutoModelForCausalLM.from_pretrained(path, **kwargs))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    prepare_tokenizer(tokenizer)
    return model, tokenizer


class PolicyLoadError(AgentRMGymError, ValueError):
    """A policy directory whose config, tokenizer or weights cannot be read; the message names the file."""


#: The files a Hugging Face causal-LM directory keeps its weights in, in the order transformers looks.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def _culprit(path: str, part: str) -> str:
    """The file of a local model directory a failed load of ``part`` most likely comes from."""
    root = Path(path)
    for name in ("config.json", "tokenizer_config.json"):  # a damaged JSON file is the culprit whatever failed
        try:
            if (root / name).is_file():
                json.loads((root / name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return str(root / name)
    if part == "tokenizer":
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json"):
            if (root / name).is_file():
                return str(root / name)
        return str(root)
    for name in WEIGHT_FILES:
        if (root / name).is_file():
            return str(root / name)
    return str(root)


def _load_part(path: str, part: str, load: Any) -> Any:
    """``load()``, with a failure on a local directory turned into :class:`PolicyLoadError` naming the file
    (a truncated ``model.safetensors`` otherwise surfaces as a bare ``SafetensorError`` about a header)."""
    try:
        return load()
    except ImportError:
        raise
    except Exception as exc:
        if not Path(path).is_dir():
            raise
        raise PolicyLoadError(f"{_culprit(path, part)}: cannot load the policy {part} "
                              f"({type(exc).__name__}: {exc}); the file is damaged or truncated: restore it, "
                              "or delete the directory and train / download it again") from exc


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Left padding and a pad token (the eos token where the tokenizer has none)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


@dataclass(frozen=True)
class Sample:
    """One generated continuation."""

    text: str
    token_ids: list[int]
    token_logprobs: list[float]
    finish_reason: str

    @property
    def logprob(self) -> float:
        return float(sum(self.token_logprobs))


class HFGenerator:
    """Batched sampling from a causal LM with stop strings and per-token log-probs.

    Args:
        model, tokenizer: a causal LM and its tokenizer.
        mode: ``"kv"`` (default: :func:`~agentrm_gym.agents.sampling.sample_continuations`) or
            ``"generate"`` (``transformers``' ``generate``; the reference the benchmark compares with).
        prefix_cache_mb: memory for the KV caches of recent prompts in ``"kv"`` mode (a
            :class:`~agentrm_gym.agents.sampling.PrefixCache`; ``0``: every prompt encoded from scratch).
        fused: in ``"kv"`` mode, decode with the fused step of :mod:`~agentrm_gym.agents.decode` (static KV
            cache, no module dispatch; the same logits bit for bit) where the model is a GPT-2 it supports;
            other models, and ``fused=False``, decode through ``model.forward``. Settable later (``.fused``).
    """

    MODES = ("kv", "generate")

    def __init__(self, model: Any, tokenizer: Any, mode: str = "kv", prefix_cache_mb: float = 256,
                 fused: bool = True):
        if mode not in self.MODES:
            raise ValueError(f"unknown sampling mode {mode!r}; use one of {', '.join(self.MODES)}")
        if prefix_cache_mb < 0:
            raise ValueError(f"prefix_cache_mb must be >= 0, got {prefix_cache_mb}")
        from agentrm_gym.agents.sampling import PrefixCache

        self.torch = _require_torch()
        self.model = model
        self.tokenizer = prepare_tokenizer(tokenizer)
        self.mode = mode
        self.fused = fused
        self.prefix_cache = (PrefixCache(int(prefix_cache_mb * (1 << 20)))
                             if mode == "kv" and prefix_cache_mb > 0 else None)

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def context_length(self) -> int:
        cfg = self.model.config
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(cfg, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return 4096

    def seed(self, seed: int) -> None:
        """Seed sampling and empty the prefix cache, so what follows samples the same whatever came before
        (a prompt resumed from a cache differs from one encoded whole in the last float bits)."""
        self.torch.manual_seed(seed)
        if self.prefix_cache is not None:
            self.prefix_cache.clear()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, prompts: Sequence[str], n: int = 1, temperature: float = 1.0, max_new_tokens: int = 64,
                 stop: Sequence[str] = STOP_STRINGS, top_p: float = 1.0) -> list[list[Sample]]:
        """``n`` samples for each prompt; ``temperature <= 0`` is greedy."""
        if not prompts:
            return []
        if self.mode == "kv":
            return self._generate_kv(prompts, n, temperature, max_new_tokens, stop, top_p)
        torch = self.torch
        tok = self.tokenizer
        max_prompt = max(1, self.context_length - max_new_tokens)
        enc = tok(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        ids, mask = enc["input_ids"][:, -max_prompt:], enc["attention_mask"][:, -max_prompt:]
        sample = temperature > 0
        reps = n if sample else 1
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens, "do_sample": sample, "num_return_sequences": reps,
            "return_dict_in_generate": True, "output_logits": True,
            "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id,
        }
        if sample:
            kwargs.update(temperature=float(temperature), top_p=float(top_p), top_k=0)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=tok)
        with torch.no_grad():
            out = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **kwargs)
        new = out.sequences[:, ids.shape[1]:].cpu()
        logits = torch.stack(out.logits, dim=1).float() if out.logits else torch.zeros(new.shape[0], 0, 1)
        logps = torch.log_softmax(logits, dim=-1).cpu()
        results: list[list[Sample]] = []
        for p in range(len(prompts)):
            row = []
            for r in range(reps):
                k = p * reps + r
                row.append(self._finish(new[k].tolist(), logps[k], stop, max_new_tokens))
            results.append(row * n if not sample else row)
        return results

    def _generate_kv(self, prompts: Sequence[str], n: int, temperature: float, max_new_tokens: int,
                     stop: Sequence[str], top_p: float) -> list[list[Sample]]:
        """The KV-cache path: identical prompts (Best-of-N in lockstep) are encoded once for all samples."""
        from agentrm_gym.agents.sampling import sample_continuations

        max_prompt = max(1, self.context_length - max_new_tokens)
        distinct: dict[str, int] = {}
        for p in prompts:
            distinct.setdefault(p, len(distinct))
        texts = list(distinct)
        counts = [0] * len(texts)
        for p in prompts:
            counts[distinct[p]] += n
        ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"][-max_prompt:] for p in texts]
        raw = sample_continuations(self.model, self.tokenizer, ids, n, temperature, max_new_tokens, stop, top_p,
                                   counts=counts, prefix_cache=self.prefix_cache, fused=self.fused)
        taken = [0] * len(texts)
        results: list[list[Sample]] = []
        for p in prompts:
            u = distinct[p]
            rows = raw[u][taken[u]:taken[u] + n]
            taken[u] += n
            # a row the sampler stopped (eos or a stop string) is shorter than the cap or holds the stop
            # string, so _finish reports "stop" for it as for the generate path
            results.append([self._finish(r.token_ids, r.token_logprobs, stop, max_new_tokens, positional=True)
                            for r in rows])
        return results

    def _finish(self, tokens: list[int], logps: Any, stop: Sequence[str], max_new_tokens: int,
                positional: bool = False) -> Sample:
        """Cut at eos / the first stop string; ``logps`` is ``[step, vocab]`` or, ``positional``, per token."""
        tok = self.tokenizer
        eos = tok.eos_token_id
        length, reason = len(tokens), "length"
        if eos is not None and eos in tokens:
            length, reason = tokens.index(eos), "stop"
        tokens = tokens[:length]
        text = tok.decode(tokens, skip_special_tokens=True)
        cuts = [text.find(s) for s in stop if s and s in text]
        if cuts:
            cut = min(cuts)
            text = text[:cut]
            reason = "stop"
            for k in range(1, len(tokens) + 1):  # the fewest tokens whose text covers the kept text
                if len(tok.decode(tokens[:k], skip_special_tokens=True)) >= cut:
                    tokens = tokens[:k]
                    break
        if reason == "length" and len(tokens) < max_new_tokens:
            reason = "stop"
        lp = [float(logps[i]) if positional else float(logps[i, t]) for i, t in enumerate(tokens)]
        return Sample(text, tokens, lp, reason)


class TransformersPolicy(LLMPolicy):
    """A local causal LM as a policy (``make_policy("path/to/model")``).

    Args:
        model: a directory / model id, or a loaded ``PreTrainedModel`` (then pass ``tokenizer``).
        tokenizer: the tokenizer of a loaded model.
        device: ``"cpu"``, ``"cuda"``... (default: CUDA when available).
        builder: prompt builder; its budget defaults to the model's context minus ``max_new_tokens`` tokens.
        max_new_tokens, retries, seed: see :class:`~agentrm_gym.agents.policy.LLMPolicy`.
        top_p: nucleus sampling.
        grounding: ``"fuzzy"`` maps each action to the nearest admissible one (see ``LLMPolicy``).
        sampler: ``"kv"`` (shared-prompt KV-cache sampling) or ``"generate"`` (``transformers``' generate).
        fused: the ``"kv"`` sampler's fused GPT-2 decoding step (see :class:`HFGenerator`).
    """

    def __init__(self, model: Any, tokenizer: Any = None, device: str | None = None,
                 builder: PromptBuilder | None = None, max_new_tokens: int = 64, retries: int = 0,
                 seed: int | None = None, top_p: float = 1.0, grounding: str = "none", sampler: str = "kv",
                 fused: bool = True):
        super().__init__(builder, max_new_tokens, retries, seed, grounding)
        _require_torch()
        if isinstance(model, str | os.PathLike):
            self.name = os.path.basename(os.path.normpath(str(model))) or str(model)
            model, tokenizer = load_model(str(model), device)
        else:
            if tokenizer is None:
                raise ValueError("pass the tokenizer together with a loaded model")
            self.name = getattr(model.config, "name_or_path", "") or type(model).__name__
            if device:
                model.to(device)
            model.eval()
        self.engine = HFGenerator(model, tokenizer, mode=sampler, fused=fused)
        self.top_p = top_p
        if self.builder.budget is None:
            self.builder.budget = self.engine.context_length - max_new_tokens
            self.builder.count = self.engine.count_tokens
        self.seed(seed)

    @property
    def model(self) -> Any:
        return self.engine.model

    @property
    def tokenizer(self) -> Any:
        return self.engine.tokenizer

    def seed(self, seed: int | None) -> None:
        """Seed sampling and empty the prefix cache: an episode started with a seed samples the same
        continuations whatever ran before it (a resumed run repeats an uninterrupted one)."""
        super().seed(seed)
        if seed is not None and hasattr(self, "engine"):
            self.engine.seed(seed)

    def prompts(self, states: Sequence[AgentState]) -> list[str]:
        return [self.builder.prompt(s, self.tokenizer) for s in states]

    def generate(self, states: Sequence[AgentState], n: int, temperature: float) -> list[list[Generation]]:
        rows = self.engine.generate(self.prompts(states), n, temperature, self.max_new_tokens, top_p=self.top_p)
        return [[Generation(s.text, s.logprob, len(s.token_ids), s.finish_reason) for s in row] for row in rows]
