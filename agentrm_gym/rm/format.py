"""The reward model's input text: a per-task RM header followed by the history.

AgentRM scores a state by the text ``header + history``: the header says who the agent is, its goal and the
actions it may take; the history lists the turns as ``Thought:`` / ``Action:`` / ``Observation:`` lines.
:class:`RMFormat` builds that text and carries the state-representation ablation of AgentRM (drop the
thoughts and/or the observations). The header templates are versioned (:data:`HEADER_VERSION`), and the
version is written into every saved RM's card so a model is always fed the text it was trained on.

Models truncate the *history* from the left (the newest turns matter most) and always keep the header;
:func:`split_rm_text` recovers the two parts from a formatted text (used by the remote-RM protocol, whose
clients send plain strings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from agentrm_gym.trajectory import AgentState

#: Bump when a template changes: a model trained on one header version should be fed the same one.
HEADER_VERSION = "v1"

#: The line that separates the header from the history in every formatted RM text.
HISTORY_SEPARATOR = "\n\nHistory:\n"

_PREAMBLE = "Your target is to interact with the environment to complete the following task:\n{goal}\n\n"

#: Task name -> RM header template (``{goal}`` is filled in). Short on purpose: the RM sees it every time.
TASK_HEADERS: dict[str, str] = {
    "WebShop": "You are an expert web shopping agent. " + _PREAMBLE
    + "Allowed actions: search[keywords] on the search page, click[button or item] on result and item pages.",
    "ALFWorld": "You are an expert household agent. " + _PREAMBLE
    + "Allowed actions: go to, take, put, open, close, toggle, clean, heat, cool, use, examine, inventory, look.",
    "ScienceWorld": "You are an expert science lab agent. " + _PREAMBLE
    + "Allowed actions: open, close, activate, deactivate, move, pick up, pour, focus on, look around, "
    "look at, read, connect, wait, go to, use, mix, teleport to.",
    "BabyAI": "You are an expert grid-world agent. " + _PREAMBLE
    + "Allowed actions: turn left, turn right, move forward, go to <obj>, pickup <obj>, go through <door>, "
    "toggle and go through <door>, toggle.",
    "Jericho": "You are an expert text adventure player. " + _PREAMBLE
    + "Allowed actions: natural-language commands such as look, inventory, go <direction>, take <item>, "
    "open <object>.",
    "PDDL": "You are an expert planning agent. " + _PREAMBLE
    + "Allowed actions: the domain's operators applied to objects, e.g. pickup b1, stack b1 b2.",
    "Maze": "You are an expert maze solver. " + _PREAMBLE
    + "Allowed actions: move up, move down, move left, move right.",
    "ToolQuery": "You are an expert tool-using agent answering queries. " + _PREAMBLE
    + "Allowed actions: <tool> with Action Input: {json}, ending with finish.",
    "ToolOperation": "You are an expert tool-using agent operating apps. " + _PREAMBLE
    + "Allowed actions: <tool> with Action Input: {json}, ending with finish.",
}

#: Header for tasks without a template (foreign envs).
GENERIC_HEADER = "You are an expert agent. " + _PREAMBLE + "Allowed actions: those the environment accepts."


@dataclass(frozen=True)
class RMFormat:
    """How a state becomes RM input text.

    Attributes:
        drop_thoughts: leave the agent's thoughts out of the history (AgentRM's ablation).
        drop_observations: leave the observations out (the first observation included).
        header_version: the template version; only :data:`HEADER_VERSION` is known to this release.
    """

    drop_thoughts: bool = False
    drop_observations: bool = False
    header_version: str = HEADER_VERSION

    def __post_init__(self) -> None:
        if self.header_version != HEADER_VERSION:
            raise ValueError(
                f"RM header version {self.header_version!r} is not known to this release (it has "
                f"{HEADER_VERSION!r}); retrain the RM or install the release that wrote it"
            )

    def header(self, state: AgentState) -> str:
        """The task's RM header with the goal filled in (the generic one for unknown tasks)."""
        template = TASK_HEADERS.get(state.task, GENERIC_HEADER)
        return template.replace("{goal}", state.goal.strip())

    def history(self, state: AgentState) -> str:
        """The turns as Thought/Action/Observation lines, oldest first."""
        return self.history_with_spans(state)[0]

    def history_with_spans(self, state: AgentState) -> tuple[str, list[tuple[int, int]]]:
        """The history text and the ``(start, end)`` character span of each step's action in it."""
        lines: list[str] = []
        spans: list[tuple[int, int]] = []
        pos = 0

        def add(line: str) -> None:
            nonlocal pos
            lines.append(line)
            pos += len(line) + 1  # the joining newline

        if not self.drop_observations:
            add(f"Observation: {state.observation.strip()}")
        for step in state.steps:
            if step.thought and not self.drop_thoughts:
                add(f"Thought: {step.thought.strip()}")
            action = step.action.strip()
            start = pos + len("Action: ")
            spans.append((start, start + len(action)))
            add(f"Action: {action}")
            if not self.drop_observations:
                add(f"Observation: {step.observation.strip()}")
        return "\n".join(lines), spans

    def parts(self, state: AgentState) -> tuple[str, str]:
        """``(header, history)``: models keep the header and truncate the history from the left."""
        return self.header(state), self.history(state)

    def text(self, state: AgentState) -> str:
        """The full RM input text (also the key of the score cache)."""
        header, history = self.parts(state)
        return header + HISTORY_SEPARATOR + history

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> RMFormat:
        d = dict(d or {})
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def split_rm_text(text: str) -> tuple[str, str]:
    """Split a formatted RM text into ``(header, history)``; text without a header is all history."""
    header, sep, history = text.partition(HISTORY_SEPARATOR)
    if not sep:
        return "", text
    return header, history
