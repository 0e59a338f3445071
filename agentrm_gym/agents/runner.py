"""Running episodes: states from an env, the oracle's trajectory, and a plain policy rollout loop.

These are the small pieces every planner and the pipeline share:

* :func:`initial_state` - the :class:`~agentrm_gym.trajectory.AgentState` right after ``reset``;
* :func:`oracle_thought` / :func:`oracle_trajectory` - expert trajectories with templated thoughts
  (one-shot prompt examples and SFT data);
* :func:`max_episode_steps` - the step budget of a ``gym.make``'d env;
* :func:`to_trajectory` - an :class:`AgentState` plus the env's final flags as a ``Trajectory`` record.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from agentrm_gym.core import unwrap_text_env
from agentrm_gym.trajectory import AgentState, Step, Trajectory

DEFAULT_MAX_STEPS = 30


def max_episode_steps(env: gym.Env, default: int = DEFAULT_MAX_STEPS) -> int:
    """``env.spec.max_episode_steps`` (the registered budget), or ``default`` when unset."""
    spec = getattr(env, "spec", None)
    steps = getattr(spec, "max_episode_steps", None) if spec is not None else None
    return int(steps) if steps else default


def initial_state(env: gym.Env, observation: str, info: dict[str, Any]) -> AgentState:
    """The agent state after ``reset`` (goal, first observation, the env's instruction)."""
    base = unwrap_text_env(env)
    return AgentState(
        task=str(info.get("task", base.task_name)),
        goal=str(info.get("goal", base.goal)),
        observation=observation,
        steps=(),
        task_id=str(info.get("task_id", base.task_id)),
        instruction=base.instruction(),
        admissible=None if info.get("admissible_actions") is None else tuple(info["admissible_actions"]),
    )


def step_record(thought: str, action: str, observation: str, reward: float, info: dict[str, Any]) -> Step:
    """A :class:`Step` from one ``env.step`` result."""
    return Step(
        action=action,
        observation=observation,
        thought=thought,
        reward=float(reward),
        progress=float(info.get("progress", 0.0)),
        action_valid=bool(info.get("action_valid", True)),
    )


def oracle_thought(action: str, goal: str) -> str:
    """A short templated thought for an expert action (oracle trajectories have none of their own)."""
    goal = goal.strip().rstrip(".") or "the task"
    return f"I should {action} to make progress toward: {goal}."


def to_trajectory(
    state: AgentState,
    success: bool,
    progress: float,
    seed: int | None = None,
    policy: str = "",
    sampling: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> Trajectory:
    """A finished episode record from the final agent state and the env's flags."""
    return Trajectory(
        task=state.task,
        task_id=state.task_id,
        goal=state.goal,
        observation=state.observation,
        steps=list(state.steps),
        success=bool(success),
        progress=float(progress),
        seed=seed,
        policy=policy,
        sampling=dict(sampling or {}),
        instruction=state.instruction,
        meta=dict(meta or {}),
    )


def oracle_trajectory(env: gym.Env, task_id: str, seed: int = 0, max_steps: int | None = None) -> Trajectory:
    """Play ``task_id`` with the env's expert; thoughts come from :func:`oracle_thought`.

    Stops at the end of the episode, after ``max_steps`` (default: the env's budget), or where the expert
    has no action.
    """
    limit = max_steps or max_episode_steps(env)
    obs, info = env.reset(seed=seed, options={"task_id": task_id})
    state = initial_state(env, obs, info)
    base = unwrap_text_env(env)
    for _ in range(limit):
        action = base.expert_action()
        if action is None:
            break
        obs, reward, term, trunc, info = env.step(action)
        state = state.extend(step_record(oracle_thought(action, state.goal), action, obs, reward, info))
        if term or trunc:
            break
    return to_trajectory(state, info["success"], info["progress"], seed=seed, policy="oracle")
