"""OpenRLHF adapter: any agentrm task as an OpenRLHF ``AgentInstanceBase`` with a reward on every step.

OpenRLHF's multi-turn executor (``openrlhf.utils.agent.MultiTurnAgentExecutor``, ``--train.agent_func_path``)
makes one agent instance per prompt, ``await reset({"observation": prompt, "label": label})`` and then, for
every generated action, ``await step({"observation_text", "action_text", "label", ...})``, which returns
``{"rewards", "scores", "environment_feedback", "done", "extra_logs"}``. The executor appends
``environment_feedback`` to the context and **sums** the step rewards into the episode's reward, so the RM's
per-turn shaping reaches OpenRLHF as its episode total (``sum_t coef * (gamma V(s_{t+1}) - V(s_t))`` plus the
outcome); ``scores`` carries the env's progress for its dynamic filtering.

Quick start (an agent file for ``--train.agent_func_path``)::

    # my_agent.py
    from agentrm_gym.rl.openrlhf import make_agent_instance_class
    AgentInstance = make_agent_instance_class(task="Maze", reward="rm", rm="runs/demo")

The ``label`` of a dataset row selects the task id (``"Maze:3"`` or just ``"3"``); without one the env draws
a train task id. The settings and per-step rewards are those of the SkyRL adapter (:data:`~agentrm_gym.rl.
skyrl.SETTINGS`, :class:`~agentrm_gym.rl.skyrl.TurnRewarder`); the prompt given to ``reset`` is replaced by
the project's prompt of the task's first state, rendered in the plain chat format (or ``chat_template``'s
tokenizer) so that the policy continues it with "Thought: ...\\nAction: ...".

OpenRLHF itself cannot be installed with its dependencies on a CPU machine: it pins ``flash-attn`` (built
against CUDA), ``deepspeed``, ``ray[default]`` and an exact ``transformers``. Its agent interface imports
with a ``pip install --no-deps --target DIR`` of openrlhf and the few small packages aiohttp and
pylatexenc need (:data:`INSTALL`, ``docs/rl_adapters.md``);
:func:`require_openrlhf` raises :class:`~agentrm_gym.core.MissingExtra` naming that command otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentrm_gym.core import MissingExtra
from agentrm_gym.extras import is_available

__all__ = ["INSTALL", "make_agent_instance_class", "require_openrlhf"]

#: What makes ``openrlhf.utils.agent`` importable without OpenRLHF's GPU dependencies.
INSTALL = ("pip install --no-deps --target DIR openrlhf aiohttp pylatexenc aiohappyeyeballs aiosignal frozenlist "
           "multidict propcache yarl, then PYTHONPATH=DIR (docs/rl_adapters.md says why)")


def require_openrlhf() -> Any:
    """``openrlhf.utils.agent``, or :class:`MissingExtra` naming :data:`INSTALL`."""
    if not is_available("openrlhf"):
        raise MissingExtra(f"the OpenRLHF adapter needs openrlhf (its GPU dependencies are not needed): {INSTALL}")
    import importlib

    try:
        return importlib.import_module("openrlhf.utils.agent")
    except ImportError as exc:
        raise MissingExtra(f"the OpenRLHF adapter needs {exc.name or 'openrlhf'} to import openrlhf.utils.agent: "
                           f"{INSTALL}") from exc


def _task_id(label: Any, task: str) -> str | None:
    if label is None or label == "":
        return None
    text = str(label)
    head, sep, tail = text.partition(":")
    return tail if sep and head.lower() == task.lower() else text


def make_agent_instance_class(task: str | None = None, tokenizer: Any = None, **config: Any) -> type:
    """An ``AgentInstanceBase`` subclass over ``task`` (OpenRLHF makes it with no argument, one per prompt).

    Args:
        task: the task (or ``config["task"]``).
        tokenizer: renders the prompt with its chat template; ``None``: the plain chat format.
        config: settings of :data:`agentrm_gym.rl.skyrl.SETTINGS` (``reward``, ``rm``, ``rm_coef``, ``gamma``,
            ``max_turns``, ``split``, ``with_example`` ...).
    """
    agent = require_openrlhf()
    from agentrm_gym.rl.skyrl import TurnRewarder, settings

    defaults = settings({**config, "task": task or config.get("task")})

    class AgentRMAgentInstance(agent.AgentInstanceBase):
        """One episode of an agentrm task for OpenRLHF's ``MultiTurnAgentExecutor``."""

        def __init__(self, *args: Any, **kwargs: Any):
            from agentrm_gym.agents.prompts import PromptBuilder
            from agentrm_gym.agents.runner import max_episode_steps
            from agentrm_gym.registry import make

            s = self.settings = dict(defaults)
            self.env = make(s["task"], split=s["split"])
            self.max_turns = int(s["max_turns"] or max_episode_steps(self.env))
            self.rewarder = TurnRewarder(s["reward"], s["rm"], s["rm_coef"], s["gamma"], s["heuristic_scale"])
            self.builder = PromptBuilder(with_example=bool(s["with_example"]))
            self.state: Any = None
            self.turns = 0

        async def reset(self, states: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
            """Start the episode the ``label`` names; the observation is the project's prompt, rendered."""
            from agentrm_gym.agents.prompts import render
            from agentrm_gym.agents.runner import initial_state

            s = self.settings
            task_id = _task_id(states.get("label"), s["task"]) or s["task_id"]
            obs, info = self.env.reset(seed=s["seed"], options=None if task_id is None else {"task_id": str(task_id)})
            self.state, self.turns = initial_state(self.env, obs, info), 0
            self.rewarder.start(self.state, info)
            return {**states, "observation": render(self.builder.messages(self.state), tokenizer)}

        async def step(self, states: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
            """Play ``states["action_text"]``; the step's reward, the observation to append, ``done``."""
            import torch

            from agentrm_gym.agents.parsing import parse_output
            from agentrm_gym.agents.prompts import render
            from agentrm_gym.agents.runner import step_record

            if self.state is None:
                raise RuntimeError("AgentRMAgentInstance: reset() before step()")
            self.turns += 1
            action_text = str(states.get("action_text", ""))
            thought, command = parse_output(action_text)
            before = self.builder.messages(self.state)
            obs, reward, terminated, truncated, info = self.env.step(command)
            self.state = self.state.extend(step_record(thought, command, obs, reward, info))
            done = bool(terminated or truncated) or self.turns >= self.max_turns
            parts = self.rewarder.step(self.state, info, done)
            feedback = ""
            if not done:  # the chat template's text after the turn: end of turn, observation, next header
                head = render(before, tokenizer) + action_text
                full = render([*before, {"role": "assistant", "content": action_text},
                               {"role": "user", "content": f"Observation: {obs.strip()}"}], tokenizer)
                feedback = full[len(head):] if full.startswith(head) else f"\n\nObservation: {obs.strip()}\n\n"
            progress = float(info.get("progress", 0.0))
            return {
                "rewards": torch.tensor(parts["reward"]),
                "scores": torch.tensor(progress),
                "environment_feedback": feedback,
                "done": done,
                "sampling_params": states.get("sampling_params"),
                "extra_logs": {"progress": torch.tensor(progress),
                               "success": torch.tensor(float(bool(info.get("success", False)))),
                               "shaping": torch.tensor(parts["shaping"])},
            }

    return AgentRMAgentInstance
