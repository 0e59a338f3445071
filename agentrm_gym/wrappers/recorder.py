"""Record every episode an env plays as one :class:`~agentrm_gym.trajectory.Trajectory` JSONL line.

A record holds task, task_id, goal, seed, policy, the steps (thought, action, observation, reward, progress,
action_valid), success and progress. A step's thought comes from ``info["thought"]`` when an
agent puts it there (or :meth:`TrajectoryRecorder.set_thought` before ``step``). An episode is written when it
ends (terminated or truncated) and, if unfinished, at the next ``reset`` or ``close``, so nothing played is lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym

from agentrm_gym.trajectory import Step, Trajectory, append_jsonl


class TrajectoryRecorder(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Append each episode's trajectory record to ``path`` (JSONL).

    Args:
        env: a text env.
        path: the JSONL file (created with its parent folders; appended to).
        policy: the policy/model id written into each record.
        sampling: sampling parameters written into each record.
    """

    def __init__(self, env: gym.Env, path: str | Path, policy: str = "", sampling: dict[str, Any] | None = None):
        gym.utils.RecordConstructorArgs.__init__(self, path=str(path), policy=policy, sampling=sampling)
        gym.Wrapper.__init__(self, env)
        self.path = Path(path)
        self.policy = policy
        self.sampling = dict(sampling or {})
        self._traj: Trajectory | None = None
        self._thought = ""
        self.episodes_written = 0

    def set_thought(self, thought: str) -> None:
        """The thought to attach to the next step."""
        self._thought = thought

    def _flush(self) -> None:
        if self._traj is not None:
            append_jsonl(self.path, [self._traj])
            self.episodes_written += 1
            self._traj = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self._flush()
        obs, info = self.env.reset(seed=seed, options=options)
        self._traj = Trajectory(
            task=str(info.get("task", "")), task_id=str(info.get("task_id", "") or ""), goal=str(info.get("goal", "")),
            observation=str(obs), seed=seed, policy=self.policy, sampling=dict(self.sampling),
            progress=float(info.get("progress", 0.0)), success=bool(info.get("success", False)),
        )
        self._thought = ""
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._traj is not None:
            self._traj.steps.append(Step(
                action=str(info.get("action_text", action)), observation=str(obs),
                thought=str(info.get("thought", self._thought)), reward=float(reward),
                progress=float(info.get("progress", 0.0)), action_valid=bool(info.get("action_valid", True)),
            ))
            self._traj.progress = float(info.get("progress", self._traj.progress))
            self._traj.success = bool(info.get("success", self._traj.success))
            self._thought = ""
            if terminated or truncated:
                self._flush()
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self._flush()
        super().close()
