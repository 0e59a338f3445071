"""The :class:`Policy` interface, the LLM policy base and the baseline policies.

Every policy answers ``propose(state, n, temperature)`` with ``n`` :class:`Proposal` s
``(thought, action, logprob)``; ``propose_batch(states, n, temperature)`` does the same for many states
(LLM backends send them in one batch). Policies that read the env (the oracle, random, noisy oracle) set
``requires_env = True`` and receive it through ``bind(env)``; planners restore the env to a state's
snapshot before asking them.

Backends (LLM policies share one prompt builder and one parser through :class:`LLMPolicy`):

* ``transformers``: :class:`agentrm_gym.agents.hf.TransformersPolicy`
* ``openai``: :class:`agentrm_gym.agents.openai_backend.OpenAIPolicy`
* ``vllm``: :class:`agentrm_gym.agents.vllm_backend.VLLMPolicy`

:func:`agentrm_gym.agents.factory.make_policy` builds any of them from a spec string (``oracle``, ``random``,
``noisy:0.5``, ``openai:http://host:port/v1[#model]``, ``vllm:PATH``, or a model directory / id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from agentrm_gym.agents.parsing import has_action, parse_output
from agentrm_gym.agents.prompts import PromptBuilder
from agentrm_gym.agents.runner import oracle_thought
from agentrm_gym.core import CHECK_VALID_ACTIONS, TextEnv, unwrap_text_env
from agentrm_gym.trajectory import AgentState


@dataclass(frozen=True)
class Proposal:
    """One candidate next turn.

    Attributes:
        thought: the reasoning text (may be empty).
        action: the command to send to the env.
        logprob: the sequence log-probability of the generated text (0.0 for scripted policies).
        text: the raw generated text.
        num_tokens: generated tokens (0 for scripted policies).
    """

    thought: str
    action: str
    logprob: float = 0.0
    text: str = ""
    num_tokens: int = 0


@dataclass(frozen=True)
class Generation:
    """One sampled completion from a backend."""

    text: str
    logprob: float = 0.0
    num_tokens: int = 0
    finish_reason: str = "stop"


class Policy:
    """Base class: subclasses implement :meth:`propose` (and may override :meth:`propose_batch`)."""

    #: A short id recorded in trajectories.
    name: str = "policy"
    #: Whether :meth:`propose` reads the bound env (planners restore it to the state first).
    requires_env: bool = False

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)
        self.env: gym.Env | None = None

    def seed(self, seed: int | None) -> None:
        """Reseed the policy's sampling (planners call this so runs are deterministic per seed)."""
        self.rng = np.random.default_rng(seed)

    def bind(self, env: gym.Env) -> None:
        """Give the policy access to the env (used by the oracle-based baselines)."""
        self.env = env

    def propose(self, state: AgentState, n: int = 1, temperature: float = 1.0) -> list[Proposal]:
        """``n`` candidate turns for ``state``."""
        raise NotImplementedError

    def propose_batch(self, states: Sequence[AgentState], n: int = 1,
                      temperature: float = 1.0) -> list[list[Proposal]]:
        """``n`` candidates for each of ``states`` (LLM backends batch these in one call)."""
        return [self.propose(s, n, temperature) for s in states]

    @property
    def base_env(self) -> TextEnv:
        if self.env is None:
            raise RuntimeError(f"{type(self).__name__} needs the env: call policy.bind(env) first")
        return unwrap_text_env(self.env)

    def close(self) -> None:
        """Release resources (HTTP clients, models)."""


class RandomPolicy(Policy):
    """Uniform over the env's admissible actions (its action space's sample where it has no list)."""

    name = "random"
    requires_env = True

    def _random_action(self) -> str:
        base = self.base_env
        acts = base.admissible_actions()
        if acts:
            return str(acts[int(self.rng.integers(len(acts)))])
        vocab = getattr(base, "command_vocabulary", ())
        if vocab:
            return str(vocab[int(self.rng.integers(len(vocab)))])
        return CHECK_VALID_ACTIONS

    def propose(self, state: AgentState, n: int = 1, temperature: float = 1.0) -> list[Proposal]:
        out = []
        for _ in range(n):
            action = self._random_action()
            out.append(Proposal(f"I will try {action}.", action))
        return out


class OraclePolicy(RandomPolicy):
    """The env's expert (``expert_action()``); falls back to a random admissible action where it has none."""

    name = "oracle"

    def _expert(self, goal: str) -> Proposal:
        action = self.base_env.expert_action()
        if action is None:
            action = self._random_action()
        return Proposal(oracle_thought(action, goal), action)

    def propose(self, state: AgentState, n: int = 1, temperature: float = 1.0) -> list[Proposal]:
        return [self._expert(state.goal) for _ in range(n)]


class NoisyOraclePolicy(OraclePolicy):
    """The expert, replaced by a uniformly random admissible action with probability ``p_noise``.

    A scripted stand-in for an imperfect sampling policy (tests, benchmarks). The noise is its sampling,
    so it applies at every temperature.
    """

    def __init__(self, p_noise: float = 0.5, seed: int | None = None):
        super().__init__(seed)
        if not 0.0 <= p_noise <= 1.0:
            raise ValueError(f"p_noise must be in [0, 1], got {p_noise}")
        self.p_noise = p_noise
        self.name = f"noisy:{p_noise:g}"

    def propose(self, state: AgentState, n: int = 1, temperature: float = 1.0) -> list[Proposal]:
        out = []
        for _ in range(n):
            if self.rng.random() < self.p_noise:
                action = self._random_action()
                out.append(Proposal(f"I will try {action}.", action))
            else:
                out.append(self._expert(state.goal))
        return out


def ground_action(action: str, admissible: Sequence[str]) -> str:
    """The admissible action most similar to ``action`` (``action`` itself when it is admissible)."""
    if not admissible or action in admissible:
        return action
    from rapidfuzz import fuzz, process, utils

    best = process.extractOne(action, admissible, scorer=fuzz.WRatio, processor=utils.default_process)
    return str(best[0]) if best else action


class LLMPolicy(Policy):
    """A language-model policy: prompt builder -> backend generations -> parsed proposals.

    Subclasses implement :meth:`generate`. ``retries`` re-samples outputs that contain no ``Action:`` up
    to that many times; with 0 (the default) such output is sent to the env as is.

    Action grounding (``grounding="fuzzy"``) maps each parsed action to the most similar of the state's
    admissible actions (``AgentState.admissible``, rapidfuzz's ``WRatio``), as text-game agents commonly do
    to turn a near-miss ("click[B079 green]") into a command the env accepts. It is off by default (the
    env's invalid-action message then teaches the agent); states whose admissible list is unknown are left
    as generated. The raw generation stays in ``Proposal.text``.

    Args:
        builder: the prompt builder (default: one-shot oracle example, no cut).
        max_new_tokens: generation length limit.
        retries: re-samples for outputs without an action.
        seed: sampling seed.
        grounding: ``"none"`` or ``"fuzzy"``.
    """

    name = "llm"

    def __init__(self, builder: PromptBuilder | None = None, max_new_tokens: int = 64, retries: int = 0,
                 seed: int | None = None, grounding: str = "none"):
        super().__init__(seed)
        if grounding not in ("none", "fuzzy"):
            raise ValueError(f"grounding must be 'none' or 'fuzzy', got {grounding!r}")
        self.builder = builder or PromptBuilder()
        self.max_new_tokens = max_new_tokens
        self.retries = retries
        self.grounding = grounding

    def generate(self, states: Sequence[AgentState], n: int, temperature: float) -> list[list[Generation]]:
        """``n`` generations for each state (one batched backend call where the backend allows)."""
        raise NotImplementedError

    def propose_batch(self, states: Sequence[AgentState], n: int = 1,
                      temperature: float = 1.0) -> list[list[Proposal]]:
        if not states:
            return []
        gens = self.generate(states, n, temperature)
        for _ in range(self.retries):
            missing = [(i, j) for i, row in enumerate(gens) for j, g in enumerate(row) if not has_action(g.text)]
            if not missing:
                break
            again = self.generate([states[i] for i, _ in missing], 1, temperature)
            for (i, j), row in zip(missing, again, strict=True):
                g = row[0]
                old = gens[i][j]
                gens[i][j] = Generation(g.text, g.logprob, g.num_tokens + old.num_tokens, g.finish_reason)
        out = []
        for state, row in zip(states, gens, strict=True):
            props = []
            for g in row:
                thought, action = parse_output(g.text)
                if self.grounding == "fuzzy" and state.admissible:
                    action = ground_action(action, state.admissible)
                props.append(Proposal(thought, action, g.logprob, g.text, g.num_tokens))
            out.append(props)
        return out

    def propose(self, state: AgentState, n: int = 1, temperature: float = 1.0) -> list[Proposal]:
        return self.propose_batch([state], n, temperature)[0]
