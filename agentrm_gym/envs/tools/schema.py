"""Tool schemas: what a tool is called, what it does, its typed arguments, and the check of a call's arguments.

A :class:`Tool` lists its :class:`Param` s (``string``, ``integer``, ``number``, ``boolean``, ``any``
or ``array[<type>]``) and renders the AgentBoard-style description shown in the instruction.
:func:`check_args` validates a call's arguments against the schema. Anything wrong with a call raises
:class:`ToolError`, whose message becomes the observation. The two ``finish`` tools are defined here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class ToolError(Exception):
    """A tool call that cannot run; the message is shown to the agent as ``Error: <message>``."""


@dataclass(frozen=True)
class Param:
    """One argument of a tool.

    Attributes:
        name: the JSON key.
        type: ``string``, ``integer``, ``number``, ``boolean``, ``any`` (a scalar), or ``array[<type>]``.
        description: what the argument means.
        required: whether the call fails without it.
    """

    name: str
    type: str
    description: str
    required: bool = True


@dataclass(frozen=True)
class Tool:
    """A tool's name, what it does, its arguments and what it returns (shown in the instruction)."""

    name: str
    description: str
    params: tuple[Param, ...] = ()
    returns: str = ""

    def usage(self) -> str:
        """``name(arg1, arg2)``."""
        return f"{self.name}({', '.join(p.name for p in self.params)})"

    def describe(self) -> str:
        """AgentBoard-style description block: name, description, parameters, returns."""
        lines = [f"Name: {self.usage()}", f"Description: {self.description}"]
        if self.params:
            lines.append("Parameters:")
            for p in self.params:
                optional = "" if p.required else ", optional"
                lines.append(f"- {p.name} (Type: {p.type}{optional}): {p.description}")
        if self.returns:
            lines.append(f"Returns: {self.returns}")
        return "\n".join(lines)


FINISH_QUERY = Tool(
    "finish", "Return the final answer and end the task.",
    (Param("answer", "any", "The answer to the question (a string or a number)."),),
    "The answer, ending the episode.",
)
FINISH_OPERATION = Tool(
    "finish", "End the task once every requested change is made.",
    (Param("answer", "any", "An optional final message or answer.", required=False),),
    "The final state, ending the episode.",
)


def clip(text: str, n: int = 80) -> str:
    """``text`` cut to ``n`` characters (with "..." when cut), for quoting input in error messages."""
    return text if len(text) <= n else text[:n] + "..."


def _type_ok(value: Any, type_: str) -> bool:
    if type_.startswith("array[") and type_.endswith("]"):
        return isinstance(value, list) and all(_type_ok(v, type_[6:-1]) for v in value)
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if type_ == "boolean":
        return isinstance(value, bool)
    if type_ == "any":
        if isinstance(value, float):
            return math.isfinite(value)
        return value is None or isinstance(value, str | int | bool)
    raise ValueError(f"unknown parameter type {type_!r}")


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object", type(None): "null"}.get(type(value), type(value).__name__)


def check_args(tool: Tool, args: dict[str, Any]) -> dict[str, Any]:
    """Validate ``args`` against ``tool``'s schema; return them with the optional ones defaulted to None.

    Raises:
        ToolError: naming the missing, unknown or mistyped argument and the tool's usage.
    """
    names = {p.name for p in tool.params}
    unknown = sorted(set(args) - names)
    if unknown:
        expected = ", ".join(p.name for p in tool.params) or "none"
        raise ToolError(f"{tool.name} got unknown argument(s) {', '.join(map(repr, unknown))}; "
                        f"its arguments are: {expected}. Usage: {tool.usage()}")
    out: dict[str, Any] = {}
    for p in tool.params:
        if p.name not in args or (args[p.name] is None and not p.required):
            if p.required:
                raise ToolError(f"{tool.name} is missing the argument '{p.name}' ({p.type}). Usage: {tool.usage()}")
            out[p.name] = None
            continue
        if not _type_ok(args[p.name], p.type):
            raise ToolError(f"the argument '{p.name}' of {tool.name} must be {p.type}, "
                            f"got {_type_name(args[p.name])} {clip(repr(args[p.name]), 40)}.")
        out[p.name] = args[p.name]
    return out
