"""Parse a model's "Thought: ...\\nAction: ..." output into (thought, action).

The action is the first line of the text after the *last* ``Action:`` (ETO/AgentRM parse with
``Action: (.*)``); the thought is the text after ``Thought:`` up to that ``Action:``. Output without an
``Action:`` is returned as the action unchanged (first non-empty line), so the env's invalid-action
message can teach the agent; :func:`has_action` lets a caller retry instead.
"""

from __future__ import annotations

import re

_ACTION = re.compile(r"Action\s*:", re.IGNORECASE)
_THOUGHT = re.compile(r"Thought\s*:", re.IGNORECASE)


def has_action(text: str) -> bool:
    """Whether ``text`` contains an ``Action:`` marker."""
    return _ACTION.search(text) is not None


def parse_output(text: str) -> tuple[str, str]:
    """Split a model output into ``(thought, action)``.

    Args:
        text: the generated text, e.g. ``"Thought: go left first.\\nAction: move left"``.

    Returns:
        The thought (may be empty) and the action: the first line after the last ``Action:``, or the
        first non-empty line of ``text`` when it has no ``Action:`` (sent to the env as is).
    """
    text = text.strip()
    matches = list(_ACTION.finditer(text))
    if not matches:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        first = lines[0] if lines else ""
        thought_match = _THOUGHT.match(first)
        if thought_match:  # only a thought: no action to take
            return first[thought_match.end():].strip(), ""
        return "", first
    last = matches[-1]
    after = text[last.end():].strip()
    action = after.splitlines()[0].strip() if after else ""
    before = text[: last.start()].strip()
    thoughts = list(_THOUGHT.finditer(before))
    thought = before[thoughts[-1].end():].strip() if thoughts else before
    return thought, action


def format_turn(thought: str, action: str) -> str:
    """The assistant turn for ``(thought, action)``: ``"Thought: ...\\nAction: ..."``."""
    return f"Thought: {thought.strip()}\nAction: {action.strip()}"
