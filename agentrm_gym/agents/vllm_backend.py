"""The ``vllm`` backend: an in-process ``vllm.LLM`` for GPU users (the ``[vllm]`` extra).

vLLM is imported lazily; where it is not installed, or no CUDA GPU is visible, constructing
:class:`VLLMPolicy` raises :class:`~agentrm_gym.core.MissingExtra` saying what to do. vLLM does not
install on the CPU-only machines this project is developed on, so its tests cover the import guard and the
request building (:func:`sampling_params`, :meth:`VLLMPolicy.build_requests`); the generation path
follows vLLM's documented ``LLM.generate(prompts, SamplingParams)`` API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentrm_gym.agents.policy import Generation, LLMPolicy
from agentrm_gym.agents.prompts import STOP_STRINGS, PromptBuilder, render
from agentrm_gym.core import MissingExtra
from agentrm_gym.extras import is_available
from agentrm_gym.trajectory import AgentState


def is_vllm_available() -> bool:
    """Whether the ``vllm`` package can be imported."""
    return is_available("vllm")


def require_vllm() -> Any:
    """Import vllm, or raise :class:`MissingExtra` (not installed, or no GPU)."""
    if not is_vllm_available():
        raise MissingExtra("the vllm backend needs vLLM and a CUDA GPU: pip install 'agentrm-gym[vllm]' "
                           "(or serve the model with `vllm serve` and use --policy openai:URL)")
    has_gpu = False
    if is_available("torch"):
        import torch

        has_gpu = torch.cuda.is_available()
    if not has_gpu:
        raise MissingExtra("the vllm backend needs a CUDA GPU and none is visible; use the transformers "
                           "backend (a model path) or an OpenAI-compatible endpoint (openai:URL)")
    import vllm

    return vllm


def sampling_params(n: int, temperature: float, max_new_tokens: int, seed: int | None = None,
                    stop: Sequence[str] = STOP_STRINGS, logprobs: bool = True, top_p: float = 1.0) -> dict[str, Any]:
    """The keyword arguments of ``vllm.SamplingParams`` for one batch."""
    params: dict[str, Any] = {"n": n, "temperature": max(0.0, float(temperature)), "top_p": top_p,
                              "max_tokens": max_new_tokens, "stop": list(stop)}
    if seed is not None:
        params["seed"] = int(seed)
    if logprobs:
        params["logprobs"] = 0  # vLLM then reports the sampled tokens' log-probs (cumulative_logprob)
    return params


class VLLMPolicy(LLMPolicy):
    """An in-process vLLM engine as a policy.

    Args:
        model: a model directory or Hub id.
        builder, max_new_tokens, retries, seed: see :class:`~agentrm_gym.agents.policy.LLMPolicy`.
        tokenizer: a tokenizer for rendering prompts (default: the engine's).
        llm: an existing ``vllm.LLM`` (skips the import guard; also used by tests with a stand-in engine).
        **llm_kwargs: passed to ``vllm.LLM`` (``tensor_parallel_size``, ``gpu_memory_utilization``, ...).
    """

    def __init__(self, model: str, builder: PromptBuilder | None = None, max_new_tokens: int = 64,
                 retries: int = 0, seed: int | None = None, tokenizer: Any = None, llm: Any = None,
                 top_p: float = 1.0, **llm_kwargs: Any):
        super().__init__(builder, max_new_tokens, retries, seed)
        if llm is None:
            vllm = require_vllm()
            llm = vllm.LLM(model=model, seed=seed or 0, **llm_kwargs)
        self.llm = llm
        self.tokenizer = tokenizer if tokenizer is not None else llm.get_tokenizer()
        self.top_p = top_p
        self.name = f"vllm:{model}"
        if self.builder.budget is None:
            ctx = getattr(getattr(getattr(llm, "llm_engine", None), "model_config", None), "max_model_len", None)
            if ctx:
                self.builder.budget = int(ctx) - max_new_tokens
                self.builder.count = lambda text: len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def build_requests(self, states: Sequence[AgentState], n: int, temperature: float) -> tuple[list[str], dict[str, Any]]:
        """The prompts and ``SamplingParams`` keyword arguments of one batched call."""
        prompts = [render(self.builder.messages(s), self.tokenizer) for s in states]
        seed = int(self.rng.integers(2**31 - 1))
        return prompts, sampling_params(n, temperature, self.max_new_tokens, seed, top_p=self.top_p)

    def generate(self, states: Sequence[AgentState], n: int, temperature: float) -> list[list[Generation]]:
        prompts, params = self.build_requests(states, n, temperature)
        vllm = require_vllm() if not hasattr(self.llm, "sampling_params_class") else None
        params_cls = vllm.SamplingParams if vllm is not None else self.llm.sampling_params_class
        outputs = self.llm.generate(prompts, params_cls(**params), use_tqdm=False)
        return [[Generation(o.text, float(o.cumulative_logprob or 0.0), len(o.token_ids), o.finish_reason or "stop")
                 for o in req.outputs] for req in outputs]
