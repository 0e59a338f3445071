"""What the tool environments share: tool schemas, action parsing, argument checks and dispatch.

An action is ``Action: <tool> with Action Input: {json}`` (the ``Action:`` prefix is optional), as in
AgentBoard's tool tasks. :func:`parse_action` turns the text into ``(tool, args)``; a :class:`ToolSet`
checks the arguments against the tool's :class:`Param` schema and calls the method of the same name.
Anything wrong (unparsable text, bad JSON, unknown tool, missing/unknown/mistyped argument, an entity
that does not exist) raises :class:`ToolError`, whose message becomes the observation. Databases are
only ever queried with bound parameters, so argument text never reaches SQL as code.

:class:`ToolEnv` is the TextEnv base of Tool-Query and Tool-Operation: it owns the per-env SQLite
connection, the parse/dispatch step, the ``finish`` tool, the instruction text and the admissible-action
list, which is built only from what the agent has seen (:mod:`~agentrm_gym.envs.tools.knowledge`).
"""

from __future__ import annotations

import ast
import copy
import json
import math
import random
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from agentrm_gym.core import StepOutcome, TextEnv, UnknownTask
from agentrm_gym.envs.tools.knowledge import Knowledge

ACTION_RE = re.compile(r"^([A-Za-z_]\w*)\s+with\s+action\s+input\s*:?\s*(.*)$", re.IGNORECASE | re.DOTALL)
FORMAT_HINT = 'Use the format: Action: <tool> with Action Input: {"argument": value, ...}'
#: Longest Action Input text that is parsed at all (longer inputs are refused, never evaluated).
MAX_INPUT_CHARS = 20_000
#: Most actions in the admissible list, and most dry runs spent building it.
ADMISSIBLE_CAP = 60
MAX_DRY_RUNS = 150


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


# --------------------------------------------------------------------------- parsing
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
        raise ToolError(f"could not parse the action {_clip(text)!r}. {FORMAT_HINT}")
    tool, raw = match.group(1), match.group(2).strip()
    if not raw:
        return tool, {}
    if len(raw) > MAX_INPUT_CHARS:
        raise ToolError(f"the Action Input is too long ({len(raw)} characters).")
    try:
        args = json.loads(raw)
    except ValueError:
        try:
            args = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise ToolError(f"the Action Input of '{tool}' is not valid JSON: {_clip(raw)}. {FORMAT_HINT}") from None
    if not isinstance(args, dict):
        raise ToolError(f"the Action Input of '{tool}' must be a JSON object like {{\"name\": value}}, "
                        f"got {type(args).__name__}.")
    if not all(isinstance(k, str) for k in args):
        raise ToolError(f"the Action Input of '{tool}' must have string keys.")
    return tool, args


def format_call(tool: str, args: dict[str, Any] | None = None) -> str:
    """The canonical action text of a call: ``tool with Action Input: {json}``."""
    return f"{tool} with Action Input: {json.dumps(args or {}, ensure_ascii=False)}"


def _clip(text: str, n: int = 80) -> str:
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
        return value is None or isinstance(value, str | int | float | bool)
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
                            f"got {_type_name(args[p.name])} {_clip(repr(args[p.name]), 40)}.")
        out[p.name] = args[p.name]
    return out


# --------------------------------------------------------------------------- answers
_NUMBER_RE = re.compile(r"^[-+]?\$?\s*[-+]?(\d[\d,]*\.?\d*|\.\d+)\s*(%|km|kilometers|minutes|min|mm|cm|m)?$")


def normalize_answer(value: Any) -> str | float:
    """Canonical form of an answer: a float for anything numeric, else lower-cased single-spaced text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return float(value)
    text = " ".join(str(value).strip().lower().split()).strip(" .'\"`")
    match = _NUMBER_RE.match(text)
    if match:
        try:
            return float(match.group(1).replace(",", ""))
        except ValueError:
            pass
    return {"true": "yes", "false": "no"}.get(text, text)


def answers_match(given: Any, gold: Any) -> bool:
    """Whether two answers agree after normalisation (numbers to 2 decimals, text case/space-free)."""
    a, b = normalize_answer(given), normalize_answer(gold)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=0.005)
    return a == b


def to_text(result: Any) -> str:
    """A tool result as observation text (JSON for structures, plain text for strings)."""
    if isinstance(result, str):
        return result
    return json.dumps(result, ensure_ascii=False)


# --------------------------------------------------------------------------- tool sets
class ToolSet:
    """A set of tools over one SQLite database; a tool is the method of the same name.

    Args:
        conn: the env's own connection (the tools read it; Tool-Operation tools write it).
        context: task facts the tools expose (the user's current date and location).

    ``session`` holds episode state outside the database (loaded graphs, the open sheet); it is part of
    the env's snapshot.
    """

    name: ClassVar[str] = ""
    tools: ClassVar[tuple[Tool, ...]] = ()

    def __init__(self, conn: sqlite3.Connection, context: dict[str, Any] | None = None):
        self.conn = conn
        self.context = dict(context or {})
        self.session: dict[str, Any] = {}

    @classmethod
    def tool_names(cls) -> list[str]:
        return [t.name for t in cls.tools]

    @classmethod
    def get_tool(cls, name: str) -> Tool | None:
        for t in cls.tools:
            if t.name == name:
                return t
        return None

    @classmethod
    def describe(cls) -> str:
        """The instruction block listing every tool with its arguments."""
        return "\n\n".join(t.describe() for t in cls.tools)

    def call(self, name: str, args: dict[str, Any]) -> str:
        """Run one validated call (not ``finish``); return the observation text.

        Writes run in one transaction that is rolled back when the tool fails, so a failed call never
        changes the store.

        Raises:
            ToolError: on any problem with the call.
        """
        tool = self.get_tool(name)
        if tool is None or name == "finish":
            raise ToolError(f"unknown tool '{name}'. Valid tools: {', '.join(self.tool_names())}.")
        kwargs = check_args(tool, args)
        try:
            with self.conn:
                result = getattr(self, name)(**kwargs)
        except ToolError:
            raise
        except (sqlite3.Error, ValueError, TypeError, OverflowError, ArithmeticError) as exc:
            raise ToolError(f"{name} failed: {exc}") from None
        return to_text(result)

    def candidates(self, knowledge: Knowledge) -> Iterator[tuple[str, dict[str, Any]]]:
        """Calls with arguments whose values the agent has seen (``knowledge``); not checked for validity.

        The default pairs every one-string-argument tool with every known string; tool sets override it
        with their own argument schemes. Zero-argument tools and ``finish`` are added by the env.
        """
        strings = knowledge.strings()
        for tool in self.tools:
            if len(tool.params) == 1 and tool.params[0].type == "string":
                for value in strings:
                    yield tool.name, {tool.params[0].name: value}

    def learn(self, tool: str, args: dict[str, Any], observation: str, knowledge: Knowledge) -> None:
        """Record what a successful call showed beyond its values (e.g. a sheet's size); a no-op here."""

    def would_succeed(self, name: str, args: dict[str, Any]) -> bool:
        """Whether a call would run without error now; a dry run that leaves the store and session as they are."""
        tool = self.get_tool(name)
        if tool is None:
            return False
        session = copy.deepcopy(self.session)
        self.conn.execute("SAVEPOINT dry_run")
        try:
            getattr(self, name)(**check_args(tool, args))
            return True
        except (ToolError, sqlite3.Error, ValueError, TypeError, OverflowError, ArithmeticError):
            return False
        finally:
            self.conn.execute("ROLLBACK TO dry_run")
            self.conn.execute("RELEASE dry_run")
            self.session = session

    # helpers for tools
    def one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, tuple(params)).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, tuple(params)).fetchall()


def connect(data: bytes | None = None) -> sqlite3.Connection:
    """A fresh in-memory connection, optionally loaded from ``Connection.serialize()`` bytes."""
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    if data is not None:
        conn.deserialize(data)
    conn.row_factory = sqlite3.Row
    return conn


def serialize(conn: sqlite3.Connection) -> bytes:
    """The whole database as bytes (restored exactly by :func:`connect`)."""
    return bytes(conn.serialize())


def canonical_call(tool: str, args: dict[str, Any]) -> str:
    """A hashable canonical form of a call, for comparing calls independent of key order."""
    return tool + json.dumps(args, sort_keys=True, ensure_ascii=False)


def parse_task_id(task_id: str, sizes: dict[str, int], sets: Any) -> tuple[str, str, int]:
    """Split ``"<set>-<split>-<index>"`` and check it against the split sizes."""
    parts = task_id.split("-")
    if len(parts) == 3 and parts[0] in sets and parts[1] in sizes and parts[2].isdigit():
        index = int(parts[2])
        if index < sizes[parts[1]]:
            return parts[0], parts[1], index
    raise UnknownTask(f"{task_id!r}; ids look like 'academia-test-3' or 'movie-train-88' with sets "
                      f"{', '.join(sets)}, {sizes['test']} test and {sizes['train']} train tasks per set")


# --------------------------------------------------------------------------- the env base
class ToolEnv(TextEnv):
    """The shared mechanics of Tool-Query and Tool-Operation (see the module docstring).

    Subclasses set ``toolsets`` (name -> ToolSet class) and implement the task hooks; the current
    tool set is ``self.tools``. ``_on_call`` and ``_on_finish`` record what a call did.

    Admissible actions: ``self.knowledge`` records the entities of the goal text and of every successful
    tool output (it is part of the snapshot state). :meth:`admissible_actions` lists every zero-argument
    tool that would run, the ``finish`` calls of :meth:`_finish_candidates`, and calls whose arguments
    are known entities (:meth:`ToolSet.candidates`), sampled round-robin over the tools with a seeded
    shuffle and kept only when a dry run succeeds, at most :data:`ADMISSIBLE_CAP` in all, sorted by
    text. The gold calls and answer are never consulted: a gold call is listed only when its arguments
    can be read off the goal or the outputs, and then like any other candidate.
    """

    toolsets: ClassVar[dict[str, type[ToolSet]]] = {}
    invalid_action_message = "Error: the action is not valid. " + FORMAT_HINT
    first_observation = ("New trial starts. Once you have finished the goal, please remember to take "
                         "'finish' action to end this goal.")

    def __init__(self, split: str = "train", render_mode: str | None = None):
        super().__init__(split=split, render_mode=render_mode)
        self.tools: ToolSet | None = None
        self.gold_calls: list[tuple[str, dict[str, Any]]] = []
        self.made_calls: set[str] = set()
        self.knowledge = Knowledge()
        self._admissible_cache: tuple[tuple, int, tuple[str, ...]] | None = None

    # ----------------------------------------------------------- hooks for the two envs
    def finish_tool(self) -> Tool:
        raise NotImplementedError

    def _on_call(self, tool: str, args: dict[str, Any], observation: str) -> None:
        """Record a successful call (progress bookkeeping) and what its output showed the agent."""
        self.made_calls.add(canonical_call(tool, args))
        self.knowledge.learn_output(observation)
        assert self.tools is not None
        self.tools.learn(tool, args, observation, self.knowledge)

    def _on_finish(self, args: dict[str, Any]) -> str:
        """Handle a validated ``finish`` call; return its observation."""
        raise NotImplementedError

    # ----------------------------------------------------------- stepping
    def all_tools(self) -> list[Tool]:
        assert self.tools is not None
        return [*type(self.tools).tools, self.finish_tool()]

    def _step(self, action: str) -> StepOutcome:
        if self.tools is None:
            return StepOutcome("Error: no task is loaded.", valid=False)
        names = [t.name for t in self.all_tools()]
        try:
            tool, args = parse_action(action, names)
            if tool not in names:
                close = [n for n in names if n.lower() == tool.lower()]
                hint = f" Did you mean '{close[0]}'?" if close else ""
                raise ToolError(f"unknown tool '{tool}'.{hint} Valid tools: {', '.join(names)}.")
            if tool == "finish":
                kwargs = check_args(self.finish_tool(), args)
                return StepOutcome(self._on_finish(kwargs), valid=True, terminal=True)
            observation = self.tools.call(tool, args)
        except ToolError as exc:
            return StepOutcome(f"Error: {exc}", valid=False)
        self._on_call(tool, args, observation)
        return StepOutcome(observation, valid=True)

    # ----------------------------------------------------------- agent-facing text
    def instruction(self) -> str:
        sets = [type(self.tools)] if self.tools is not None else list(self.toolsets.values())
        blocks = []
        for cls in sets:
            tools = "\n\n".join(t.describe() for t in [*cls.tools, self.finish_tool()])
            blocks.append(f"The {cls.name} tools:\n{tools}")
        return (
            "You can use tools to help people solve problems. We detail the name, description, input "
            "(parameters) and output (returns) of each tool below.\n\n" + "\n\n".join(blocks) + "\n\n"
            "Call one tool per turn; your response must be in the format \"Action: [tool] with Action "
            "Input: [a JSON object of the arguments]\", e.g. Action: " + self._example_call() + ". "
            "Take the 'finish' action once the goal is done."
        )

    def _example_call(self) -> str:
        cls = type(self.tools) if self.tools is not None else next(iter(self.toolsets.values()))
        tool = next((t for t in cls.tools if t.params), cls.tools[0])
        args = {p.name: f"<{p.name}>" for p in tool.params if p.required}
        return format_call(tool.name, args)

    def admissible_actions(self) -> list[str] | None:
        """A sample of the valid calls built only from what the agent has seen (see :class:`ToolEnv`).

        Every zero-argument tool that would run now; the ``finish`` calls of :meth:`_finish_candidates`;
        then calls whose arguments are entities from the goal or the observations so far
        (:meth:`ToolSet.candidates`), taken round-robin over the tools from seeded shuffles and kept when
        a dry run succeeds, up to :data:`ADMISSIBLE_CAP` actions in all. Sorted by text. The list is a
        function of the env state (deterministic; cached until the state changes), never of the gold
        calls or answer.
        """
        if self.tools is None:
            return None
        session = json.dumps(self.tools.session, sort_keys=True, default=str)
        key = (self.task_id, self.knowledge.version, session, len(self.made_calls))
        cached = self._admissible_cache
        if cached is not None and cached[0] == key and cached[1] == self.tools.conn.total_changes:
            return list(cached[2])
        rng = random.Random(f"{self.task_id}|{self.knowledge.version}|{len(self.made_calls)}|{session}")
        out: list[str] = []
        seen: set[str] = set()

        def add(tool: str, args: dict[str, Any]) -> None:
            text = format_call(tool, args)
            if text not in seen:
                seen.add(text)
                out.append(text)

        zero_arg = [t.name for t in type(self.tools).tools if not any(p.required for p in t.params)]
        for name in zero_arg:
            if self.tools.would_succeed(name, {}):
                add(name, {})
        for args in self._finish_candidates(rng):
            add("finish", args)
        groups: dict[str, list[dict[str, Any]]] = {}
        for name, args in self.tools.candidates(self.knowledge):
            if args:
                groups.setdefault(name, []).append(args)
        order = sorted(groups)
        rng.shuffle(order)
        for name in order:
            rng.shuffle(groups[name])
        budget = MAX_DRY_RUNS
        while order and budget > 0 and len(out) < ADMISSIBLE_CAP:
            for name in list(order):
                if not groups[name]:
                    order.remove(name)
                    continue
                args = groups[name].pop()
                text = format_call(name, args)
                if text in seen:
                    continue
                budget -= 1
                if self.tools.would_succeed(name, args):
                    seen.add(text)
                    out.append(text)
                if budget <= 0 or len(out) >= ADMISSIBLE_CAP:
                    break
        out.sort()
        self._admissible_cache = (key, self.tools.conn.total_changes, tuple(out))
        return out

    def _finish_candidates(self, rng: random.Random) -> list[dict[str, Any]]:
        """The ``finish`` calls to list (their arguments); subclasses decide."""
        return [{}]

    def _reset_knowledge(self, goal: str) -> None:
        """Start the episode's record of seen entities from the goal text."""
        self.knowledge = Knowledge()
        self.knowledge.learn_goal(goal)
        self._admissible_cache = None

    def _set_knowledge(self, state: dict[str, Any]) -> None:
        self.knowledge = Knowledge.from_state(state)
        self._admissible_cache = None

    def _next_gold_call(self) -> str | None:
        for tool, args in self.gold_calls:
            if canonical_call(tool, args) not in self.made_calls:
                return format_call(tool, args)
        return None
