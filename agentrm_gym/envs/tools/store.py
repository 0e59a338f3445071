"""State comparison for the Tool-Operation stores: a store's state as facts, and the changes between states.

A state is every row of the tracked tables keyed by its primary key. A *change* relative to the seed
state is either ``(table, key, column, value)`` (a new row's field or a changed field) or
``(table, key, DELETED)`` (a row of the seed that is gone). The gold changes are the changes of the
gold state; progress counts the agent's correct changes minus its wrong ones.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

DELETED = "<deleted>"
#: Table name -> its primary-key columns.
Schema = Mapping[str, Sequence[str]]
State = dict[str, dict[tuple, dict[str, Any]]]


def dump_state(conn: sqlite3.Connection, schema: Schema) -> State:
    """Every row of the tracked tables, as ``{table: {key: {column: value}}}``."""
    state: State = {}
    for table, key_cols in schema.items():
        cursor = conn.execute(f"SELECT * FROM {table}")  # table names come from the schema constant
        cols = [d[0] for d in cursor.description]
        rows: dict[tuple, dict[str, Any]] = {}
        for row in cursor.fetchall():
            record = dict(zip(cols, row, strict=True))
            rows[tuple(record[k] for k in key_cols)] = {c: v for c, v in record.items() if c not in key_cols}
        state[table] = rows
    return state


def changes(seed: State, state: State) -> frozenset[tuple]:
    """The facts by which ``state`` differs from ``seed``."""
    out: set[tuple] = set()
    for table, rows in state.items():
        before = seed.get(table, {})
        for key, record in rows.items():
            old = before.get(key)
            for col, value in record.items():
                if old is None or old.get(col) != value:
                    out.add((table, key, col, value))
        for key in before:
            if key not in rows:
                out.add((table, key, DELETED))
    return frozenset(out)


def change_score(gold: frozenset[tuple], made: frozenset[tuple]) -> float:
    """``(correct changes - wrong changes) / gold changes``, clipped to [0, 1] (1 when ``made == gold``)."""
    if not gold:
        return 1.0 if not made else 0.0
    correct = len(gold & made)
    wrong = len(made - gold)
    return min(1.0, max(0.0, (correct - wrong) / len(gold)))
