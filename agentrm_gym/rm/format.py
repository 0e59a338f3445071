"""The reward model's input text: a per-task RM header followed by the history.

AgentRM scores a state by the text ``header + history``: the header says who the agent is, its goal and the
actions it may take; the history lists the turns as ``Thought:`` / ``Action:`` / ``Observation:`` lines.
:class:`RMFormat` builds that text and carries the state-representation ablation of AgentRM (drop the
thoughts and/or the observations). The header templates are versioned (:data:`HEADER_VERSION`), and the
version is written into every saved RM's card so a model is always fed the text it was trained on.

Two history styles:

* ``style="full"`` (header version ``v1``): every turn as Thought/Action/Observation lines; models
  truncate the history from the left and keep the header.
* ``style="compact"`` (``v2``, the pipeline's default): the step count, then every action with the start
  of its observation (the last observation longer), so the whole trajectory fits a short encoder budget:
  what an episode achieved anywhere in it stays visible, which is what ranking final states needs. Past
  ``max_steps_shown`` steps the *middle* is cut (the first steps and the last ones stay). Thoughts are
  left out (a small SFT policy's are templated, "I will click."; ``style="full"`` keeps them).

Both styles remove scores that an environment prints about itself (WebShop's "Your score (min 0.0,
max 1.0)", ToolOperation's "The store (does not) match(es) the goal"): an RM that reads them would be an
oracle on those tasks, not a learned judge (``strip_env_scores=False`` keeps them).
:func:`split_rm_text` recovers the two parts from a formatted text (used by the remote-RM protocol, whose
clients send plain strings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agentrm_gym.core import UnknownTask
from agentrm_gym.registry import env_score_patterns, get_spec
from agentrm_gym.trajectory import AgentState

#: Bump when a template changes: a model trained on one header version should be fed the same one.
HEADER_VERSION = "v1"
#: Header versions this release can build, by history style.
STYLE_VERSIONS = {"full": "v1", "compact": "v2"}

def strip_env_scores(text: str) -> str:
    """``text`` without the scores that envs print about the episode itself (each task's
    ``TaskSpec.score_patterns``, :func:`agentrm_gym.registry.env_score_patterns`)."""
    for pattern in env_score_patterns():
        text = pattern.sub("", text)
    return text


def clip(text: str, limit: int) -> str:
    """Whitespace collapsed, cut to ``limit`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."

#: The line that separates the header from the history in every formatted RM text.
HISTORY_SEPARATOR = "\n\nHistory:\n"

_PREAMBLE = "Your target is to interact with the environment to complete the following task:\n{goal}\n\n"

def task_header(task: str) -> str:
    """The RM header template of ``task`` (``{goal}`` to fill in): its ``TaskSpec.rm_role``, the preamble
    and ``Allowed actions: <TaskSpec.rm_actions>``; the generic header for a task the table does not know
    (a foreign env). Short on purpose: the RM sees it every time."""
    try:
        spec = get_spec(task)
    except UnknownTask:
        return GENERIC_HEADER
    return f"{spec.rm_role} {_PREAMBLE}Allowed actions: {spec.rm_actions}"


#: Header for tasks without a row in the task table (foreign envs).
GENERIC_HEADER = "You are an expert agent. " + _PREAMBLE + "Allowed actions: those the environment accepts."


@dataclass(frozen=True)
class RMFormat:
    """How a state becomes RM input text.

    Attributes:
        drop_thoughts: leave the agent's thoughts out of the history (AgentRM's ablation).
        drop_observations: leave the observations out (the first observation included).
        header_version: the template version: ``v1`` for ``style="full"``, ``v2`` for ``"compact"``
            (filled in from the style when empty).
        style: ``"full"`` turns or ``"compact"`` (every action with an observation snippet).
        strip_env_scores: remove the scores environments print about themselves.
        obs_chars: observation characters per step (compact).
        last_obs_chars: characters of the last observation (compact).
        max_steps_shown: steps shown before the middle is cut (compact).
    """

    drop_thoughts: bool = False
    drop_observations: bool = False
    header_version: str = ""
    style: str = "full"
    strip_env_scores: bool = True
    obs_chars: int = 50
    last_obs_chars: int = 240
    max_steps_shown: int = 24

    def __post_init__(self) -> None:
        if self.style not in STYLE_VERSIONS:
            raise ValueError(f"unknown RM text style {self.style!r}; use one of {', '.join(STYLE_VERSIONS)}")
        if not self.header_version:
            object.__setattr__(self, "header_version", STYLE_VERSIONS[self.style])
        if self.header_version != STYLE_VERSIONS[self.style]:
            raise ValueError(
                f"RM header version {self.header_version!r} is not known to this release for style "
                f"{self.style!r} (it has {STYLE_VERSIONS[self.style]!r}); retrain the RM or install the release "
                "that wrote it"
            )

    def _obs(self, text: str) -> str:
        return strip_env_scores(text) if self.strip_env_scores else text

    def header(self, state: AgentState) -> str:
        """The task's RM header with the goal filled in (the generic one for unknown tasks); the compact
        style's header is one line, ``Task: <name>. Goal: <goal>``."""
        if self.style == "compact":
            return f"Task: {state.task}. Goal: {clip(state.goal, 400)}"
        template = task_header(state.task)
        return template.replace("{goal}", state.goal.strip())

    def history(self, state: AgentState) -> str:
        """The turns as Thought/Action/Observation lines, oldest first."""
        return self.history_with_spans(state)[0]

    def compact_history(self, state: AgentState) -> str:
        """The compact history: step count, then ``i. action -> observation snippet`` per step."""
        steps = state.steps
        lines = [f"Steps taken: {len(steps)}."]
        if not self.drop_observations:
            lines.append(f"Start: {clip(self._obs(state.observation), self.obs_chars)}")
        shown = list(range(len(steps)))
        if len(steps) > self.max_steps_shown:
            head = max(1, self.max_steps_shown // 4)
            shown = list(range(head)) + list(range(len(steps) - (self.max_steps_shown - head), len(steps)))
        prev = -1
        for i in shown:
            if i != prev + 1:
                lines.append(f"({i - prev - 1} steps omitted)")
            prev = i
            step = steps[i]
            parts = [f"{i + 1}.", clip(step.action, 80)]
            if not self.drop_observations:
                limit = self.last_obs_chars if i == len(steps) - 1 else self.obs_chars
                parts.append("-> " + clip(self._obs(step.observation), limit))
            lines.append(" ".join(parts))
        return "\n".join(lines)

    def history_with_spans(self, state: AgentState) -> tuple[str, list[tuple[int, int]]]:
        """The full history text and the ``(start, end)`` character span of each step's action in it."""
        lines: list[str] = []
        spans: list[tuple[int, int]] = []
        pos = 0

        def add(line: str) -> None:
            nonlocal pos
            lines.append(line)
            pos += len(line) + 1  # the joining newline

        if not self.drop_observations:
            add(f"Observation: {self._obs(state.observation).strip()}")
        for step in state.steps:
            if step.thought and not self.drop_thoughts:
                add(f"Thought: {step.thought.strip()}")
            action = step.action.strip()
            start = pos + len("Action: ")
            spans.append((start, start + len(action)))
            add(f"Action: {action}")
            if not self.drop_observations:
                add(f"Observation: {self._obs(step.observation).strip()}")
        return "\n".join(lines), spans

    def parts(self, state: AgentState) -> tuple[str, str]:
        """``(header, history)``: models keep the header and truncate the history from the left."""
        if self.style == "compact":
            return self.header(state), self.compact_history(state)
        return self.header(state), self.history(state)

    def text(self, state: AgentState) -> str:
        """The full RM input text (also the key of the score cache)."""
        header, history = self.parts(state)
        return header + HISTORY_SEPARATOR + history

    def task_of(self, text: str, tasks: Sequence[str]) -> str | None:
        """Which of ``tasks`` an RM text of this format is about, read off its header; ``None`` when none is
        (or, in the full style, when a task has only the generic header, which does not name it)."""
        header = split_rm_text(text)[0]
        for task in tasks:
            if self.style == "compact":
                if header.startswith(f"Task: {task}. Goal: "):
                    return task
                continue
            template = task_header(task)
            before, _, after = template.partition("{goal}")
            if template != GENERIC_HEADER and header.startswith(before) and header.endswith(after):
                return task
        return None

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
