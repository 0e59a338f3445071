"""Tool calls as text: parsing ``[Action:] <tool> with Action Input: {json}`` and writing it canonically.

The action format is AgentBoard's tool-task format. :func:`parse_action` turns the text into
``(tool, args)`` (JSON or a Python dict literal, never evaluated as code, refused past
:data:`MAX_INPUT_CHARS` characters or :data:`MAX_INPUT_DEPTH` levels of nesting, and refused when it holds
a non-finite number: ``NaN``, ``Infinity``, ``1e999``); :func:`format_call` writes the canonical action
text of a call and :func:`canonical_call` a key-order-free form for comparing calls.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from agentrm_gym.envs.tools.schema import ToolError, clip

ACTION_RE = re.compile(r"^([A-Za-z_]\w*)\s+with\s+action\s+input\s*:?\s*(.*)$", re.IGNORECASE | re.DOTALL)
FORMAT_HINT = 'Use the format: Action: <tool> with Action Input: {"argument": value, ...}'
#: Longest Action Input text that is parsed at all (longer inputs are refused, never evaluated).
MAX_INPUT_CHARS = 20_000
#: Deepest nesting of arrays/objects an Action Input may have (the object itself is level 1). Deeper input
#: (e.g. a kilobyte of ``[``) is refused: Python's parsers would raise ``RecursionError`` on it.
MAX_INPUT_DEPTH = 16


def _check_value(tool: str, args: Any) -> None:
    """Refuse parsed input nested deeper than :data:`MAX_INPUT_DEPTH` or holding a non-finite number.

    Iterative, so it cannot itself overflow the stack.
    """
    stack = [(args, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list | tuple):
            if depth > MAX_INPUT_DEPTH:
                raise ToolError(f"the Action Input of '{tool}' is nested too deeply (more than "
                                f"{MAX_INPUT_DEPTH} levels of arrays/objects).")
            items = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items)
        elif isinstance(value, float) and not math.isfinite(value):
            raise ToolError(f"the Action Input of '{tool}' holds a non-finite number ({value!r}); numbers "
                            "must be finite (no NaN, Infinity or overflowing literals like 1e999).")


def parse_action(text: str, known: Sequence[str] = ()) -> tuple[str, dict[str, Any]]:
    """Split ``[Action:] <tool> with Action Input: {json}`` into the tool name and its arguments.

    The input may be JSON or a Python dict literal (LLMs often write single quotes); it must be an
    object. An empty input means no arguments.

    Raises:
        ToolError: the text does not follow the format, or the input is not an object.
    """
    body = text.strip()
    if body[:7].lower() == "action:":
        body = body[7:].strip()
    match = ACTION_RE.match(body)
    if match is None:
        first = body.split(maxsplit=1)[0] if body else ""
        if first in known:
            raise ToolError(f"the call to '{first}' has no Action Input. {FORMAT_HINT}")
        raise ToolError(f"could not parse the action {clip(text)!r}. {FORMAT_HINT}")
    tool, raw = match.group(1), match.group(2).strip()
    if not raw:
        return tool, {}
    if len(raw) > MAX_INPUT_CHARS:
        raise ToolError(f"the Action Input is too long ({len(raw)} characters).")
    too_deep = ToolError(f"the Action Input of '{tool}' is nested too deeply (more than {MAX_INPUT_DEPTH} "
                         "levels of arrays/objects).")
    try:
        args = json.loads(raw)
    except RecursionError:
        raise too_deep from None
    except ValueError:
        try:
            args = ast.literal_eval(raw)
        except RecursionError:
            raise too_deep from None
        except (ValueError, SyntaxError, TypeError, MemoryError):
            raise ToolError(f"the Action Input of '{tool}' is not valid JSON: {clip(raw)}. {FORMAT_HINT}") from None
    _check_value(tool, args)
    if not isinstance(args, dict):
        raise ToolError(f"the Action Input of '{tool}' must be a JSON object like {{\"name\": value}}, "
                        f"got {type(args).__name__}.")
    if not all(isinstance(k, str) for k in args):
        raise ToolError(f"the Action Input of '{tool}' must have string keys.")
    return tool, args


def format_call(tool: str, args: dict[str, Any] | None = None) -> str:
    """The canonical action text of a call: ``tool with Action Input: {json}``."""
    return f"{tool} with Action Input: {json.dumps(args or {}, ensure_ascii=False)}"


def canonical_call(tool: str, args: dict[str, Any]) -> str:
    """A hashable canonical form of a call, for comparing calls independent of key order."""
    return tool + json.dumps(args, sort_keys=True, ensure_ascii=False)
