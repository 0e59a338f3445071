"""Episode records shared by agents, planners, reward models and the pipeline.

* :class:`Step` - one turn: the agent's thought and action, the env's observation, reward and progress.
* :class:`AgentState` - what an agent or a reward model sees: task, goal, first observation, history.
* :class:`Trajectory` - a finished episode with its metadata, stored one JSON object per line (JSONL).

Their JSON forms live here only: ``Step.from_dict``, ``Trajectory.to_dict`` / ``from_dict``,
:func:`state_to_dict` / :func:`state_from_dict`. The JSONL helpers come from :mod:`agentrm_gym.files`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from agentrm_gym.files import append_jsonl, read_jsonl

__all__ = ["AgentState", "Step", "Trajectory", "append_jsonl", "read_jsonl", "read_trajectories",
           "state_from_dict", "state_to_dict"]


@dataclass(frozen=True)
class Step:
    """One turn of an episode."""

    action: str
    observation: str
    thought: str = ""
    reward: float = 0.0
    progress: float = 0.0
    action_valid: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Step:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class AgentState:
    """The state an agent acts on and a reward model scores: the goal and the history so far.

    Attributes:
        task: task name ("Maze", "WebShop", ...), selects prompts and RM headers.
        goal: the instruction text (``info["goal"]``).
        observation: the first observation after ``reset``.
        steps: the turns taken so far.
        task_id: the env's task id (metadata, not part of the text).
        instruction: the env's instruction (what the env is, its action grammar), for prompts.
        admissible: the env's admissible actions in this state (``info["admissible_actions"]``), or ``None``
            where unknown. Metadata for action grounding; not part of the state's text or :meth:`key`.
    """

    task: str
    goal: str
    observation: str
    steps: tuple[Step, ...] = ()
    task_id: str = ""
    instruction: str = ""
    admissible: tuple[str, ...] | None = field(default=None, compare=False)

    def extend(self, step: Step, admissible: Sequence[str] | None = None) -> AgentState:
        """The state after ``step``; ``admissible`` is the new state's admissible list (if known)."""
        return replace(self, steps=(*self.steps, step), admissible=None if admissible is None else tuple(admissible))

    @property
    def last_observation(self) -> str:
        return self.steps[-1].observation if self.steps else self.observation

    def key(self) -> str:
        """A stable text key of the state's content (for caches)."""
        return json.dumps(
            [self.task, self.goal, self.observation, [(s.thought, s.action, s.observation) for s in self.steps]],
            ensure_ascii=False,
        )


@dataclass
class Trajectory:
    """A finished episode: one line of ``episodes.jsonl`` or ``trajectories.jsonl`` (:meth:`to_dict`)."""

    task: str
    task_id: str
    goal: str
    observation: str
    steps: list[Step] = field(default_factory=list)
    success: bool = False
    progress: float = 0.0
    seed: int | None = None
    policy: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)
    instruction: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def state(self, upto: int | None = None) -> AgentState:
        """The agent state after the first ``upto`` steps (all by default)."""
        steps = self.steps if upto is None else self.steps[:upto]
        return AgentState(self.task, self.goal, self.observation, tuple(steps), self.task_id, self.instruction)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["steps"] = [asdict(s) for s in self.steps]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trajectory:
        fields = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        fields["steps"] = [Step.from_dict(s) for s in d.get("steps", [])]
        return cls(**fields)


def state_to_dict(state: AgentState) -> dict[str, Any]:
    """The JSON form of an :class:`AgentState` (tree nodes, RM pairs, ``/score`` requests); the
    ``admissible`` metadata is not part of it."""
    return {"task": state.task, "task_id": state.task_id, "goal": state.goal, "observation": state.observation,
            "instruction": state.instruction, "steps": [asdict(s) for s in state.steps]}


#: The typed fields of a step in JSON: (key, accepted types, what the error says).
_STEP_FIELDS = (("action", (str,), "a string"), ("observation", (str,), "a string"), ("thought", (str,), "a string"),
                ("reward", (int, float), "a number"), ("progress", (int, float), "a number"),
                ("action_valid", (bool,), "true or false"))


def state_from_dict(d: dict[str, Any]) -> AgentState:
    """An :class:`AgentState` from its JSON form; raises ``ValueError`` naming what is missing.

    Steps need at least ``action`` (a missing ``observation`` reads as ``""``); their text fields must be
    strings and ``reward`` / ``progress`` numbers (``{"action": 5}`` is an error, not a crash later).
    """
    if not isinstance(d, dict):
        raise ValueError(f"a state must be a JSON object, got {type(d).__name__}")
    for key in ("task", "goal"):
        if key not in d:
            raise ValueError(f"a state needs {key!r}")
    steps = d.get("steps") or []
    if not isinstance(steps, list) or not all(isinstance(s, dict) and "action" in s for s in steps):
        raise ValueError("'steps' must be a list of objects with at least 'action'")
    for i, s in enumerate(steps):
        for key, kinds, what in _STEP_FIELDS:
            value = s.get(key, kinds[0]())
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ValueError(f"steps[{i}].{key} must be {what}, got {type(value).__name__} {value!r:.40}")
    return AgentState(
        task=str(d["task"]), goal=str(d["goal"]), observation=str(d.get("observation", "")),
        steps=tuple(Step.from_dict({"observation": "", **s}) for s in steps), task_id=str(d.get("task_id", "")),
        instruction=str(d.get("instruction", "")),
    )


def read_trajectories(path: str | Path) -> list[Trajectory]:
    return [Trajectory.from_dict(d) for d in read_jsonl(path)]
