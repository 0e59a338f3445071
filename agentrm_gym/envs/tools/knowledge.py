"""What an agent could know in a tool episode: the entities named in its goal and in its observations.

The admissible actions of the tool envs are built from this record only, never from the task's gold
calls or gold answer: a tool set turns the known entities (titles, names, ids, cities, coordinates,
dates, numbers, sheet names and cell positions) into candidate calls (:meth:`ToolSet.candidates`), and
candidate answers for ``finish`` are the values that tool outputs have shown.

A :class:`Knowledge` is a plain, picklable record (``to_state``/``from_state``) so that it is part of an
env's snapshot. Facts are ``(source, key, value)`` triples kept in the order they were learnt, without
duplicates: ``source`` is ``goal`` (the goal text), ``obs`` (a tool output) or ``agg`` (a count or sum of
a list a tool output held); ``key`` is the JSON key the value appeared under (``""`` for a bare output,
``quoted``/``date``/``number``/``name``/``cell`` for values picked out of free text).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

DATE_RE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
QUOTED_RE = re.compile(r"'([^'\n]{1,120})'|\"([^\"\n]{1,120})\"")
NUMBER_RE = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?!\w)")
CELL_RE = re.compile(r"\b([A-Z]{1,2}[1-9]\d{0,4})\b")
NAME_RE = re.compile(r"\b[A-Z][\w-]*(?:\s+[A-Z][\w-]*)+")
#: Capitalised words that start a question or an instruction rather than a name.
STOPWORDS = frozenset({"A", "An", "The", "At", "In", "On", "Which", "What", "Who", "Where", "When", "How", "Will",
                       "Is", "Mark", "Set", "Delete", "Move", "Complete", "Sort", "Round", "Answer", "Add", "Write",
                       "Raise", "I"})
#: Limits that keep the record (and so the admissible list's cost) bounded on huge outputs.
MAX_FACTS = 3000
MAX_PER_OUTPUT = 400
MAX_TEXT = 120


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def as_date(value: Any) -> dt.date | None:
    """The date of a ``YYYY-MM-DD`` string, or None."""
    if isinstance(value, str) and DATE_RE.fullmatch(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


class Knowledge:
    """The entities an agent has seen so far in one episode (see the module docstring)."""

    def __init__(self) -> None:
        self.facts: list[tuple[str, str, Any]] = []
        self.coords: list[tuple[float, float]] = []
        #: Sheet name -> ``[rows, cols, header]`` as last shown (header None when only the size is known).
        self.grids: dict[str, list[Any]] = {}
        #: Bumped by every ``learn_*`` call (part of the state; seeds the admissible-list sampling).
        self.version = 0
        self._index: set[tuple] = set()

    # ----------------------------------------------------------- state
    def to_state(self) -> dict[str, Any]:
        """A plain copy for snapshots."""
        return {"facts": [list(f) for f in self.facts], "coords": [list(c) for c in self.coords],
                "grids": json.loads(json.dumps(self.grids)), "version": self.version}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Knowledge:
        """The record saved by :meth:`to_state`."""
        k = cls()
        for source, key, value in state["facts"]:
            k.add(source, key, value)
        k.coords = [tuple(c) for c in state["coords"]]
        k.grids = json.loads(json.dumps(state["grids"]))
        k.version = state["version"]
        return k

    # ----------------------------------------------------------- learning
    def add(self, source: str, key: str, value: Any) -> None:
        """Record one fact (ignored when already known, empty, too long or past :data:`MAX_FACTS`)."""
        if isinstance(value, str):
            value = value.strip()
            if not value or len(value) > MAX_TEXT:
                return
        elif not _is_number(value):
            return
        tag = (source, key, type(value).__name__, value)
        if tag in self._index or len(self.facts) >= MAX_FACTS:
            return
        self._index.add(tag)
        self.facts.append((source, key, value))

    def add_coords(self, latitude: float, longitude: float) -> None:
        pair = (float(latitude), float(longitude))
        if pair not in self.coords:
            self.coords.append(pair)

    def learn_goal(self, goal: str) -> None:
        """Pick the quoted strings, names, dates, numbers and cell positions out of the goal text."""
        self.version += 1
        self._learn_text(goal, "goal", names=True)

    def _learn_text(self, text: str, source: str, names: bool = False) -> None:
        for match in QUOTED_RE.finditer(text):
            self.add(source, "quoted", match.group(1) or match.group(2))
        rest = QUOTED_RE.sub(" ", text)
        for date in DATE_RE.findall(rest):
            self.add(source, "date", date)
        rest = DATE_RE.sub(" ", rest)
        if names:
            for match in NAME_RE.finditer(rest):
                words = match.group(0).split()
                while words and words[0] in STOPWORDS:
                    words.pop(0)
                if len(words) >= 2:
                    self.add(source, "name", " ".join(words))
            for cell in CELL_RE.findall(rest):
                self.add(source, "cell", cell)
        for number in NUMBER_RE.findall(rest):
            self.add(source, "number", _number(number))

    def learn_output(self, text: str) -> None:
        """Record the values of a tool's output (JSON structures are walked; free text is scanned)."""
        self.version += 1
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            stripped = text.strip()
            if stripped and len(stripped) <= 60 and "\n" not in stripped and not stripped.endswith("."):
                self.add("obs", "", stripped)
            self._learn_text(text[:4000], "obs")
            return
        budget = [MAX_PER_OUTPUT]
        self._walk(value, "", budget)

    def _walk(self, value: Any, key: str, budget: list[int], depth: int = 0) -> None:
        if budget[0] <= 0 or depth > 6:
            return
        if isinstance(value, dict):
            lat, lon = value.get("latitude"), value.get("longitude")
            if _is_number(lat) and _is_number(lon):
                self.add_coords(lat, lon)
            for k, v in value.items():
                self._walk(v, str(k), budget, depth + 1)
        elif isinstance(value, list):
            if value and all(not isinstance(v, dict | list) for v in value):
                self.add("agg", "count", len(value))
                if all(_is_number(v) for v in value):
                    self.add("agg", "sum", round(sum(value), 2))
            elif value and all(isinstance(v, dict) for v in value):
                self.add("agg", "count", len(value))
            for item in value:
                self._walk(item, key, budget, depth + 1)
        else:
            budget[0] -= 1
            self.add("obs", key, value)

    # ----------------------------------------------------------- queries
    def values(self, sources: Sequence[str] = ("goal", "obs"), keys: Iterable[str] | None = None) -> list[Any]:
        """The distinct values of the facts from ``sources`` (under ``keys`` when given), first seen first."""
        wanted = None if keys is None else set(keys)
        out: list[Any] = []
        seen: set[tuple] = set()
        for source, key, value in self.facts:
            if source in sources and (wanted is None or key in wanted):
                tag = (type(value).__name__, value)
                if tag not in seen:
                    seen.add(tag)
                    out.append(value)
        return out

    def strings(self, sources: Sequence[str] = ("goal", "obs"), keys: Iterable[str] | None = None,
                min_len: int = 2) -> list[str]:
        """The distinct string values (dates excluded)."""
        return [v for v in self.values(sources, keys)
                if isinstance(v, str) and len(v) >= min_len and as_date(v) is None]

    def numbers(self, sources: Sequence[str] = ("goal", "obs"), keys: Iterable[str] | None = None) -> list[Any]:
        """The distinct numeric values."""
        return [v for v in self.values(sources, keys) if _is_number(v)]

    def ints(self, sources: Sequence[str] = ("goal", "obs"), keys: Iterable[str] | None = None) -> list[int]:
        """The distinct integer values (and integral floats, as ints)."""
        out: list[int] = []
        for v in self.numbers(sources, keys):
            if float(v).is_integer() and int(v) not in out:
                out.append(int(v))
        return out

    def dates(self, sources: Sequence[str] = ("goal", "obs"), keys: Iterable[str] | None = None) -> list[str]:
        """The distinct dates (``YYYY-MM-DD``)."""
        out: list[str] = []
        for v in self.values(sources, keys):
            day = as_date(v)
            if day is not None and day.isoformat() not in out:
                out.append(day.isoformat())
        return out

    def current_dates(self) -> list[str]:
        """Dates a tool returned on their own (e.g. ``get_user_current_date``) or as ``current_date``."""
        return self.dates(("obs",), ("", "current_date"))

    def answers(self) -> list[Any]:
        """Candidate final answers: the values tool outputs showed, and counts and sums of their lists."""
        return [v for v in self.values(("obs", "agg")) if not isinstance(v, str) or len(v) <= 80]


def shifted(day: str, days: int) -> str:
    """``day`` moved by ``days`` days."""
    return (dt.date.fromisoformat(day) + dt.timedelta(days=days)).isoformat()


def goal_first(knowledge: Knowledge, items: Sequence[Any], limit: int) -> list[Any]:
    """Up to ``limit`` of ``items``: those the goal names first, then the others in the order seen."""
    goal = {(type(v).__name__, v) for v in knowledge.values(("goal",))}
    ranked = ([v for v in items if (type(v).__name__, v) in goal]
              + [v for v in items if (type(v).__name__, v) not in goal])
    return ranked[:limit]
