"""The record of one generated tool task: its goal, the gold tool calls and the answer or gold state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Question:
    """A generated task.

    Attributes:
        goal: the instruction shown to the agent.
        calls: the gold tool calls ``(tool, args)`` in order (the oracle's path, then ``finish``).
        answer: the gold answer (Tool-Query; ``None`` for Tool-Operation, where the gold state decides).
        context: task facts the tools expose (the user's current date and location).
    """

    goal: str
    calls: list[tuple[str, dict[str, Any]]]
    answer: Any = None
    context: dict[str, Any] = field(default_factory=dict)
