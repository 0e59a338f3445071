"""LLM agents: prompts, policy backends and search planners.

* :mod:`~agentrm_gym.agents.prompts` - the ETO/AgentRM prompt builder and the ShareGPT converter;
* :mod:`~agentrm_gym.agents.parsing` - ``Thought:/Action:`` parsing;
* :mod:`~agentrm_gym.agents.policy` - the :class:`Policy` interface and the baselines;
* :mod:`~agentrm_gym.agents.factory` - :func:`make_policy` (a policy from a spec string);
* backends: :mod:`~agentrm_gym.agents.hf` (transformers), :mod:`~agentrm_gym.agents.openai_backend`,
  :mod:`~agentrm_gym.agents.vllm_backend`; :mod:`~agentrm_gym.agents.tiny` builds the tiny (untrained) model;
* :mod:`~agentrm_gym.agents.planners` - greedy, Best-of-N, beam search, MCTS, :func:`make_planner`;
* :mod:`~agentrm_gym.agents.scorers` - scorer adapters, the progress scorer (task-specific scorers live with their env: ``registry.task_scorer``);
* :mod:`~agentrm_gym.agents.runner` - episode helpers (initial state, oracle trajectories);
* :mod:`~agentrm_gym.agents.evaluation` - the evaluation engine (:class:`EvalConfig`, :func:`run_eval`)
  behind ``agentrm eval``, on :func:`agentrm_gym.parallel.run_jobs` like the pipeline's stages.

Backends import torch/httpx/vllm lazily, so importing this package stays light.
"""

from __future__ import annotations

from agentrm_gym.agents.factory import make_policy
from agentrm_gym.agents.parsing import parse_output
from agentrm_gym.agents.planners import (
    MCTS,
    BeamSearch,
    BestOfN,
    Cost,
    Greedy,
    MCTSTree,
    PlanResult,
    make_planner,
)
from agentrm_gym.agents.policy import (
    Generation,
    LLMPolicy,
    NoisyOraclePolicy,
    OraclePolicy,
    Policy,
    Proposal,
    RandomPolicy,
)
from agentrm_gym.agents.prompts import PromptBuilder, to_sharegpt
from agentrm_gym.agents.runner import oracle_trajectory
from agentrm_gym.agents.scorers import ProgressScorer, as_scorer

__all__ = [
    "MCTS", "BeamSearch", "BestOfN", "Cost", "Generation", "Greedy", "LLMPolicy", "MCTSTree",
    "NoisyOraclePolicy", "OraclePolicy", "PlanResult", "Policy", "ProgressScorer",
    "PromptBuilder", "Proposal", "RandomPolicy", "as_scorer", "make_planner", "make_policy",
    "oracle_trajectory", "parse_output", "to_sharegpt",
]
