"""Tool sets: tools over one SQLite database, dispatched by name, with dry runs and candidate calls.

A :class:`ToolSet` subclass declares its :class:`~agentrm_gym.envs.tools.schema.Tool` s and
implements each as the method of the same name. :meth:`ToolSet.call` checks the arguments and runs the
method in a transaction that a failure rolls back; :meth:`ToolSet.would_succeed` is a dry run that
leaves store and session unchanged. Databases are only ever queried with bound parameters, so argument
text never reaches SQL as code. :func:`connect` and :func:`serialize` make and dump the in-memory
databases.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from agentrm_gym.envs.tools.knowledge import Knowledge
from agentrm_gym.envs.tools.schema import Tool, ToolError, check_args


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
