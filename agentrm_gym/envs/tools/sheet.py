"""Sheet: a generated workbook (named sheets of rows and columns) and AgentBoard's gspread-style tools.

Each task id has its own workbook of three sheets (Inventory, Grades, Sales) with 5-9 data rows under a
header row. Cells live in SQLite as ``(sheet, row, col, value)`` (1-based, rectangular, values as text);
numbers are stored in a canonical form so ``30``, ``30.0`` and ``"30.00"`` are the same cell value.
Positions use A1 notation. A sheet must be opened (``open_sheet``) before it is read or changed.

Limits. A sheet has at most :data:`MAX_ROWS` rows, :data:`MAX_COLS` columns (``A`` .. ``CV``) and
:data:`MAX_CELLS` cells, and a cell value or note at most :data:`MAX_VALUE_CHARS` characters. Every
position is checked against the row/column limits when it is parsed, and every write and range read
against the cell limit, *before* any grid is built; a call past a limit fails with an error naming it. (The
observation of any tool call is also capped: :data:`agentrm_gym.envs.tools.base.MAX_OBSERVATION_CHARS`.)
"""

from __future__ import annotations

import json
import math
import random
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

from agentrm_gym.envs.tools.knowledge import Knowledge
from agentrm_gym.envs.tools.question import Question
from agentrm_gym.envs.tools.schema import Param, Tool, ToolError
from agentrm_gym.envs.tools.toolset import ToolSet, connect

SCHEMA = {"sheets": ("name",), "cells": ("sheet", "row", "col"), "notes": ("sheet", "row", "col")}
OPERATORS = ("SUM", "AVERAGE", "COUNT", "MAX", "MIN", "MINUS", "PRODUCT")
A1_RE = re.compile(r"^([A-Za-z]{1,3})([1-9]\d{0,5})$")
NUMERIC_RE = re.compile(r"^-?(\d+\.?\d*|\.\d+)$")
OPEN_RE = re.compile(r"^Sheet '.*' is open \((\d+) rows x (\d+) columns\)\.$", re.DOTALL)
#: The size limits of a sheet (see the module docstring); positions past them are refused.
MAX_ROWS = 1_000
MAX_COLS = 100
MAX_CELLS = 20_000
MAX_VALUE_CHARS = 2_000
PRODUCTS = ("Desk Lamp", "Notebook", "Stapler", "Monitor", "Keyboard", "Mouse", "Backpack", "Water Bottle",
            "Headphones", "Chair", "Whiteboard", "Printer Paper", "USB Cable", "Webcam")
CATEGORIES = ("Office", "Electronics", "Furniture", "Supplies")
STUDENTS = ("Ava Lee", "Ben Ortiz", "Chloe Kim", "Dev Patel", "Ella Novak", "Finn Walsh", "Gia Russo",
            "Hana Sato", "Ivan Petrov", "Jade Moss", "Kai Brown", "Luz Ramos")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September")
REGIONS = ("North", "South", "East", "West")
POSITION = Param("position", "string", "A1 notation of the cell, e.g. 'B3'.")
START_END = (Param("start_position", "string", "A1 notation of the first cell of the range.", required=False),
             Param("end_position", "string", "A1 notation of the last cell of the range.", required=False),
             Param("position_list", "array[string]", "A list of cell positions in A1 notation (instead of a "
                   "range).", required=False))
OPERATOR = Param("operator", "string", f"One of {', '.join(OPERATORS)}.")

Grid = list[list[str]]


def canonical(value: Any) -> str:
    """The stored text of a cell value (numbers in one canonical form; at most MAX_VALUE_CHARS characters)."""
    text = _canonical(value)
    if len(text) > MAX_VALUE_CHARS:
        raise ToolError(f"a cell value can hold at most {MAX_VALUE_CHARS} characters, got {len(text)}.")
    return text


def _canonical(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ToolError("cell values must be finite numbers.")
        number = round(float(value), 6)
        return str(int(number)) if number.is_integer() else repr(number)
    text = "" if value is None else str(value)
    if NUMERIC_RE.match(text.strip()):
        return _canonical(float(text.strip()))
    return text


def number(text: str) -> float | None:
    """The numeric value of a cell, or None."""
    return float(text) if NUMERIC_RE.match(text.strip()) else None


def col_letters(col: int) -> str:
    out = ""
    while col:
        col, rem = divmod(col - 1, 26)
        out = chr(65 + rem) + out
    return out


def a1(row: int, col: int) -> str:
    return f"{col_letters(col)}{row}"


def parse_a1(position: str) -> tuple[int, int]:
    """``(row, col)`` of an A1 position, refused past the sheet limits MAX_ROWS x MAX_COLS."""
    match = A1_RE.match(position.strip())
    if match is None:
        raise ToolError(f"{position!r} is not a cell in A1 notation (e.g. 'B3').")
    col = 0
    for ch in match.group(1).upper():
        col = col * 26 + ord(ch) - 64
    row = int(match.group(2))
    if row > MAX_ROWS or col > MAX_COLS:
        raise ToolError(f"{position.strip()} is outside the largest sheet: a sheet has at most {MAX_ROWS} rows "
                        f"and {MAX_COLS} columns (A1:{a1(MAX_ROWS, MAX_COLS)}).")
    return row, col


def check_size(rows: int, cols: int) -> None:
    """Refuse a sheet (or range) of ``rows`` x ``cols`` past MAX_ROWS, MAX_COLS or MAX_CELLS."""
    if rows > MAX_ROWS or cols > MAX_COLS:
        raise ToolError(f"the sheet would have {rows} rows x {cols} columns; a sheet has at most {MAX_ROWS} rows "
                        f"and {MAX_COLS} columns.")
    if rows * cols > MAX_CELLS:
        raise ToolError(f"the sheet would exceed {MAX_CELLS} cells ({rows} rows x {cols} columns).")


def build_store(rng: random.Random) -> tuple[sqlite3.Connection, dict[str, Any]]:
    """A fresh workbook of one task."""
    conn = connect()
    conn.executescript(
        """
        CREATE TABLE sheets (name TEXT PRIMARY KEY, position INTEGER);
        CREATE TABLE cells (sheet TEXT, row INTEGER, col INTEGER, value TEXT, PRIMARY KEY (sheet, row, col));
        CREATE TABLE notes (sheet TEXT, row INTEGER, col INTEGER, note TEXT, PRIMARY KEY (sheet, row, col));
        """
    )
    sheets: dict[str, Grid] = {
        "Inventory": [["Product", "Category", "Price", "Stock"]] + [
            [p, rng.choice(CATEGORIES), canonical(round(rng.uniform(2, 300), 2)), str(rng.choice((0, *range(1, 80))))]
            for p in rng.sample(PRODUCTS, rng.randint(5, 9))],
        "Grades": [["Student", "Math", "English", "Science"]] + [
            [s, *(str(rng.randint(40, 100)) for _ in range(3))] for s in rng.sample(STUDENTS, rng.randint(5, 9))],
        "Sales": [["Month", "Region", "Units", "Revenue"]] + [
            [m, rng.choice(REGIONS), str(u := rng.randint(10, 500)), canonical(round(u * rng.uniform(5, 40), 2))]
            for m in MONTHS[: rng.randint(5, 9)]],
    }
    for pos, (name, grid) in enumerate(sheets.items()):
        conn.execute("INSERT INTO sheets VALUES (?, ?)", (name, pos))
        write_grid(conn, name, grid)
    r, c = rng.randint(2, 4), rng.randint(1, 4)
    conn.execute("INSERT INTO notes VALUES (?, ?, ?, ?)", ("Inventory", r, c, "Checked by the store manager."))
    conn.commit()
    return conn, {}


def read_grid(conn: sqlite3.Connection, sheet: str) -> Grid:
    rows = conn.execute("SELECT row, col, value FROM cells WHERE sheet = ?", (sheet,)).fetchall()
    if not rows:
        return []
    n_rows, n_cols = max(r[0] for r in rows), max(r[1] for r in rows)
    grid = [[""] * n_cols for _ in range(n_rows)]
    for r, c, v in rows:
        grid[r - 1][c - 1] = v
    return grid


def write_grid(conn: sqlite3.Connection, sheet: str, grid: Grid) -> None:
    """Replace a sheet's cells by ``grid`` (padded to a rectangle; trailing empty rows/columns dropped)."""
    while grid and not any(grid[-1]):
        grid = grid[:-1]
    width = max((len(r) for r in grid), default=0)
    while width and not any(len(r) >= width and r[width - 1] for r in grid):
        width -= 1
    check_size(len(grid), width)
    conn.execute("DELETE FROM cells WHERE sheet = ?", (sheet,))
    conn.executemany("INSERT INTO cells VALUES (?, ?, ?, ?)",
                     [(sheet, r + 1, c + 1, row[c] if c < len(row) else "")
                      for r, row in enumerate(grid) for c in range(width)])


def _check_range(r1: int, c1: int, r2: int, c2: int) -> None:
    cells = (r2 - r1 + 1) * (c2 - c1 + 1)
    if cells > MAX_CELLS:
        raise ToolError(f"the range {a1(r1, c1)}:{a1(r2, c2)} has {cells} cells; at most {MAX_CELLS} cells "
                        "can be read at once.")


class SheetTools(ToolSet):
    """AgentBoard's gspread tools over the task's workbook (a faithful subset: no freezing or merging)."""

    name = "sheet"
    tools = (
        Tool("open_sheet", "Open a sheet by name.", (Param("name", "string", "The name of the sheet."),),
             "A confirmation with the sheet's size."),
        Tool("del_sheet", "Delete the specified sheet.", (Param("name", "string", "The name of the sheet."),),
             "A confirmation."),
        Tool("get_A1_annotation", "Translate the cell position (row, col) into A1 notation.",
             (Param("row", "integer", "Row index (from 1)."), Param("col", "integer", "Column index (from 1).")),
             "The A1 notation of the cell."),
        Tool("insert_cols", "Insert columns into the sheet at a column index.",
             (Param("values_list", "array[array[any]]", "A list of lists, each one column's values."),
              Param("col_idx", "integer", "The column to insert at (from 1). Defaults to 1.", required=False)),
             "The updated sheet values."),
        Tool("insert_rows", "Insert rows into the sheet at a row index.",
             (Param("values_list", "array[array[any]]", "A list of lists, each one row's values."),
              Param("row_idx", "integer", "The row to insert at (from 1). Defaults to 1.", required=False)),
             "The updated sheet values."),
        Tool("delete_batch_data", "Delete a batch of rows or columns.",
             (Param("dimension", "string", "'row' or 'col'."),
              Param("index_list", "array[integer]", "The indexes (from 1) of the rows/columns to delete.")),
             "The updated sheet values."),
        Tool("update_cell", "Update the value of a cell.",
             (POSITION, Param("value", "any", "The value to set.")), "The updated sheet values."),
        Tool("update_cell_by_formula", "Write the result of a formula over some cells into a target cell. "
             "Give either position_list or start_position and end_position.",
             (OPERATOR, *START_END, Param("result_position", "string", "A1 notation of the target cell.")),
             "The updated sheet values."),
        Tool("update_range", "Update a range of cells from a list of rows.",
             (Param("start_position", "string", "A1 notation of the top-left cell."),
              Param("end_position", "string", "A1 notation of the bottom-right cell."),
              Param("values_list", "array[array[any]]", "The rows of values for the range.")),
             "The updated sheet values."),
        Tool("sort_sheet_by_col", "Sort the data rows (all rows below the header row) by a column.",
             (Param("col_num", "integer", "The index (from 1) of the sort column."),
              Param("order", "string", "'asc' or 'des'.")), "The updated sheet values."),
        Tool("get_all_values", "Display all cell values of the open sheet.", (), "A list of rows."),
        Tool("get_range_values", "Get the cell values of a range.",
             (Param("start_position", "string", "A1 notation of the top-left cell."),
              Param("end_position", "string", "A1 notation of the bottom-right cell.")), "A list of rows."),
        Tool("get_cell_value", "Get the value of a cell.", (POSITION,), "The cell value."),
        Tool("get_value_by_formula", "Calculate a formula over some cells. Give either position_list or "
             "start_position and end_position.", (OPERATOR, *START_END), "The calculated value."),
        Tool("filter_cells", "Find all cells whose value equals the query.",
             (Param("query", "string", "The value to look for."),
              Param("in_row", "integer", "Only search this row.", required=False),
              Param("in_column", "integer", "Only search this column.", required=False)),
             "A list of A1 positions."),
        Tool("get_note", "Get the note of a cell (empty if it has none).", (POSITION,), "The note."),
        Tool("update_note", "Set the note of a cell.",
             (POSITION, Param("content", "string", "The text of the note.")), "A confirmation."),
    )

    # ----------------------------------------------------------- admissible calls
    def learn(self, tool: str, args: dict[str, Any], observation: str, knowledge: Knowledge) -> None:
        """Remember the size (and header row) of the open sheet whenever an output shows it."""
        sheet = self.session.get("sheet")
        if sheet is None:
            return
        match = OPEN_RE.match(observation)
        if match is not None:
            known = knowledge.grids.get(sheet)
            header = known[2] if known and known[:2] == [int(match[1]), int(match[2])] else None
            knowledge.grids[sheet] = [int(match[1]), int(match[2]), header]
            return
        if not observation.startswith("[["):
            return
        try:
            grid = json.loads(observation)
        except ValueError:
            return
        if isinstance(grid, list) and grid and all(isinstance(r, list) for r in grid) and tool != "get_range_values":
            knowledge.grids[sheet] = [len(grid), max(len(r) for r in grid), [str(v) for v in grid[0]]]

    def candidates(self, knowledge: Knowledge) -> Iterator[tuple[str, dict[str, Any]]]:
        """Sheet calls on seen names and, once the open sheet's size is known, on its cells, rows and columns.

        Written values come from the goal (its numbers and quoted words, and a row made of them) plus the
        distractors 0 and 1; formulas run over whole columns into the cell below a column or a cell the
        goal names.
        """
        quoted = knowledge.strings(("goal", "obs"), ("quoted",))
        for name in quoted:
            yield "open_sheet", {"name": name}
            yield "del_sheet", {"name": name}
        sheet = self.session.get("sheet")
        if sheet is None or sheet not in knowledge.grids:
            return
        rows, cols = min(knowledge.grids[sheet][0], 30), min(knowledge.grids[sheet][1], 12)
        goal_cells = [c for c in knowledge.values(("goal",), ("cell",)) if isinstance(c, str)]
        positions = list(dict.fromkeys([a1(r, c) for r in range(1, rows + 2) for c in range(1, cols + 1)]
                                       + goal_cells))
        numbers = list(dict.fromkeys([*knowledge.numbers(("goal",)), 0, 1]))
        words = [w for w in knowledge.strings(("goal",), ("quoted",)) if w not in knowledge.grids]
        for r in range(1, rows + 2):
            for c in range(1, cols + 1):
                yield "get_A1_annotation", {"row": r, "col": c}
        for pos in positions:
            yield "get_cell_value", {"position": pos}
            yield "get_note", {"position": pos}
            for value in numbers:
                yield "update_cell", {"position": pos, "value": value}
            for word in words:
                yield "update_note", {"position": pos, "content": word}
        for c in range(1, cols + 1):
            yield "delete_batch_data", {"dimension": "col", "index_list": [c]}
            for order in ("asc", "des"):
                yield "sort_sheet_by_col", {"col_num": c, "order": order}
            span = {"start_position": a1(2, c), "end_position": a1(rows, c)}
            yield "get_range_values", span
            for op in ("SUM", "AVERAGE", "MAX", "MIN"):
                yield "get_value_by_formula", {"operator": op, **span}
                for target in dict.fromkeys([a1(rows + 1, c), *goal_cells]):
                    yield "update_cell_by_formula", {"operator": op, **span, "result_position": target}
        yield "get_range_values", {"start_position": "A1", "end_position": a1(rows, cols)}
        for r in range(2, rows + 1):
            yield "delete_batch_data", {"dimension": "row", "index_list": [r]}
        for text in knowledge.strings(("obs",))[:40]:
            yield "filter_cells", {"query": text}
        goal_numbers = knowledge.numbers(("goal",))
        if words or goal_numbers:
            for row in ([*words, *goal_numbers], [*words, *reversed(goal_numbers)]):
                for idx in (2, rows + 1):
                    yield "insert_rows", {"values_list": [row], "row_idx": idx}
        for word in words:
            yield "insert_cols", {"values_list": [[word]], "col_idx": cols + 1}

    # ----------------------------------------------------------- helpers
    def _sheet(self) -> str:
        name = self.session.get("sheet")
        if name is None:
            raise ToolError("no sheet is open; call open_sheet first.")
        return name

    def _grid(self) -> Grid:
        return read_grid(self.conn, self._sheet())

    def _write(self, grid: Grid) -> Grid:
        write_grid(self.conn, self._sheet(), grid)
        return self._grid()

    @staticmethod
    def _pad(grid: Grid, rows: int, cols: int) -> Grid:
        width = max(cols, max((len(r) for r in grid), default=0))
        check_size(max(rows, len(grid)), width)  # before the padded grid is built
        grid = [r + [""] * (width - len(r)) for r in grid]
        grid += [[""] * width for _ in range(rows - len(grid))]
        return grid

    def _cells(self, start_position: str | None, end_position: str | None,
               position_list: list[str] | None) -> list[tuple[int, int]]:
        if position_list:
            return [parse_a1(p) for p in position_list]
        if start_position is None or end_position is None:
            raise ToolError("give position_list or both start_position and end_position.")
        (r1, c1), (r2, c2) = parse_a1(start_position), parse_a1(end_position)
        if r2 < r1 or c2 < c1:
            raise ToolError("end_position must be below and to the right of start_position.")
        _check_range(r1, c1, r2, c2)
        return [(r, c) for r in range(r1, r2 + 1) for c in range(c1, c2 + 1)]

    def _formula(self, operator: str, cells: list[tuple[int, int]]) -> float:
        op = operator.strip().upper()
        if op not in OPERATORS:
            raise ToolError(f"unknown operator {operator!r}; choose from {', '.join(OPERATORS)}.")
        grid = self._grid()
        values = []
        for r, c in cells:
            text = grid[r - 1][c - 1] if r <= len(grid) and c <= len(grid[0]) else ""
            value = number(text)
            if value is None and op != "COUNT":
                raise ToolError(f"cell {a1(r, c)} holds {text!r}, which is not a number.")
            values.append(value)
        nums = [v for v in values if v is not None]
        if op == "COUNT":
            return float(len(nums))
        if not nums:
            raise ToolError("no cells selected.")
        if op == "SUM":
            return sum(nums)
        if op == "AVERAGE":
            return sum(nums) / len(nums)
        if op == "MAX":
            return max(nums)
        if op == "MIN":
            return min(nums)
        if op == "MINUS":
            return nums[0] - sum(nums[1:])
        return math.prod(nums)

    # ----------------------------------------------------------- tools
    def open_sheet(self, name: str) -> str:
        row = self.one("SELECT name FROM sheets WHERE name = ?", (name.strip(),))
        if row is None:
            names = [r[0] for r in self.all("SELECT name FROM sheets ORDER BY position")]
            raise ToolError(f"there is no sheet named {name!r}; the sheets are: {', '.join(names)}.")
        self.session["sheet"] = row[0]
        grid = self._grid()
        return f"Sheet '{row[0]}' is open ({len(grid)} rows x {len(grid[0]) if grid else 0} columns)."

    def del_sheet(self, name: str) -> str:
        if self.one("SELECT 1 FROM sheets WHERE name = ?", (name.strip(),)) is None:
            raise ToolError(f"there is no sheet named {name!r}.")
        for table in ("sheets", "cells", "notes"):
            column = "name" if table == "sheets" else "sheet"
            self.conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (name.strip(),))
        if self.session.get("sheet") == name.strip():
            self.session.pop("sheet")
        return f"Sheet '{name.strip()}' is deleted."

    def get_A1_annotation(self, row: int, col: int) -> str:  # noqa: N802 - AgentBoard's tool name
        if not (1 <= row <= MAX_ROWS and 1 <= col <= MAX_COLS):
            raise ToolError(f"row must be between 1 and {MAX_ROWS} and col between 1 and {MAX_COLS} (the "
                            "largest sheet).")
        return a1(row, col)

    def insert_rows(self, values_list: list[list[Any]], row_idx: int | None) -> Grid:
        idx = 1 if row_idx is None else row_idx
        grid = self._grid()
        if not 1 <= idx <= len(grid) + 1:
            raise ToolError(f"row_idx must be between 1 and {len(grid) + 1}.")
        new = [[canonical(v) for v in row] for row in values_list]
        return self._write(grid[: idx - 1] + new + grid[idx - 1:])

    def insert_cols(self, values_list: list[list[Any]], col_idx: int | None) -> Grid:
        idx = 1 if col_idx is None else col_idx
        grid = self._grid()
        width = len(grid[0]) if grid else 0
        if not 1 <= idx <= width + 1:
            raise ToolError(f"col_idx must be between 1 and {width + 1}.")
        cols = [[canonical(v) for v in col] for col in values_list]
        grid = self._pad(grid, max([len(grid), *map(len, cols)]), width)
        for k, col in enumerate(cols):
            for r, row in enumerate(grid):
                row.insert(idx - 1 + k, col[r] if r < len(col) else "")
        return self._write(grid)

    def delete_batch_data(self, dimension: str, index_list: list[int]) -> Grid:
        dim = dimension.strip().lower()
        grid = self._grid()
        if dim in ("row", "rows"):
            limit = len(grid)
        elif dim in ("col", "cols", "column", "columns"):
            limit = len(grid[0]) if grid else 0
        else:
            raise ToolError(f"dimension must be 'row' or 'col', got {dimension!r}.")
        bad = [i for i in index_list if not 1 <= i <= limit]
        if bad or not index_list:
            raise ToolError(f"indexes must be between 1 and {limit}; got {index_list}.")
        drop = set(index_list)
        if dim.startswith("row"):
            grid = [row for r, row in enumerate(grid, 1) if r not in drop]
        else:
            grid = [[v for c, v in enumerate(row, 1) if c not in drop] for row in grid]
        return self._write(grid)

    def update_cell(self, position: str, value: Any) -> Grid:
        r, c = parse_a1(position)
        grid = self._pad(self._grid(), r, c)
        grid[r - 1][c - 1] = canonical(value)
        return self._write(grid)

    def update_cell_by_formula(self, operator: str, start_position: str | None, end_position: str | None,
                               position_list: list[str] | None, result_position: str) -> Grid:
        value = self._formula(operator, self._cells(start_position, end_position, position_list))
        return self.update_cell(result_position, value)

    def update_range(self, start_position: str, end_position: str, values_list: list[list[Any]]) -> Grid:
        (r1, c1), (r2, c2) = parse_a1(start_position), parse_a1(end_position)
        if r2 < r1 or c2 < c1:
            raise ToolError("end_position must be below and to the right of start_position.")
        if len(values_list) != r2 - r1 + 1 or any(len(row) != c2 - c1 + 1 for row in values_list):
            raise ToolError(f"values_list must have {r2 - r1 + 1} rows of {c2 - c1 + 1} values for "
                            f"{start_position}:{end_position}.")
        grid = self._pad(self._grid(), r2, c2)
        for dr, row in enumerate(values_list):
            for dc, v in enumerate(row):
                grid[r1 - 1 + dr][c1 - 1 + dc] = canonical(v)
        return self._write(grid)

    def sort_sheet_by_col(self, col_num: int, order: str) -> Grid:
        direction = order.strip().lower()
        if direction not in ("asc", "des", "desc"):
            raise ToolError(f"order must be 'asc' or 'des', got {order!r}.")
        grid = self._grid()
        if not grid or not 1 <= col_num <= len(grid[0]):
            raise ToolError(f"col_num must be between 1 and {len(grid[0]) if grid else 0}.")
        header, body = grid[:1], grid[1:]
        keys = [number(row[col_num - 1]) for row in body]
        if all(k is not None for k in keys):
            body = sorted(body, key=lambda row: number(row[col_num - 1]), reverse=direction != "asc")
        else:
            body = sorted(body, key=lambda row: row[col_num - 1].lower(), reverse=direction != "asc")
        return self._write(header + body)

    def get_all_values(self) -> Grid:
        return self._grid()

    def get_range_values(self, start_position: str, end_position: str) -> Grid:
        (r1, c1), (r2, c2) = parse_a1(start_position), parse_a1(end_position)
        if r2 < r1 or c2 < c1:
            raise ToolError("end_position must be below and to the right of start_position.")
        _check_range(r1, c1, r2, c2)
        grid = self._grid()
        return [[grid[r][c] if r < len(grid) and c < len(grid[r]) else "" for c in range(c1 - 1, c2)]
                for r in range(r1 - 1, r2)]

    def get_cell_value(self, position: str) -> str:
        r, c = parse_a1(position)
        grid = self._grid()
        return grid[r - 1][c - 1] if r <= len(grid) and c <= len(grid[0]) else ""

    def get_value_by_formula(self, operator: str, start_position: str | None, end_position: str | None,
                             position_list: list[str] | None) -> str:
        return canonical(self._formula(operator, self._cells(start_position, end_position, position_list)))

    def filter_cells(self, query: str, in_row: int | None, in_column: int | None) -> list[str]:
        grid = self._grid()
        return [a1(r, c) for r, row in enumerate(grid, 1) for c, v in enumerate(row, 1)
                if v == query and (in_row is None or r == in_row) and (in_column is None or c == in_column)]

    def get_note(self, position: str) -> str:
        r, c = parse_a1(position)
        row = self.one("SELECT note FROM notes WHERE sheet = ? AND row = ? AND col = ?", (self._sheet(), r, c))
        return "" if row is None else row[0]

    def update_note(self, position: str, content: str) -> str:
        r, c = parse_a1(position)
        if len(content) > MAX_VALUE_CHARS:
            raise ToolError(f"a note can hold at most {MAX_VALUE_CHARS} characters, got {len(content)}.")
        self.conn.execute("INSERT OR REPLACE INTO notes VALUES (?, ?, ?, ?)", (self._sheet(), r, c, content))
        return f"The note of {a1(r, c)} is now {content!r}."


# --------------------------------------------------------------------------- goals
def make_goal(conn: sqlite3.Connection, context: dict[str, Any], rng: random.Random, kind: int) -> Question:
    """One goal of template ``kind % 8`` with the gold calls that reach the gold state."""
    kind %= 8
    name = {0: rng.choice(("Inventory", "Grades", "Sales")), 1: "Inventory", 2: rng.choice(("Inventory", "Grades")),
            3: "Grades", 4: rng.choice(("Inventory", "Sales")), 5: rng.choice(("Inventory", "Grades", "Sales")),
            6: "Grades", 7: "Inventory"}[kind]
    grid = read_grid(conn, name)
    header, body = grid[0], grid[1:]
    base = [("open_sheet", {"name": name}), ("get_all_values", {})]
    if kind == 0:
        col = rng.randint(2, len(header)) if name != "Grades" else rng.randint(1, len(header))
        order = rng.choice(("asc", "des"))
        word = "ascending" if order == "asc" else "descending"
        return Question(f"Sort the sheet '{name}' by the column '{header[col - 1]}' in {word} order "
                        "(keep the header row first).", [*base, ("sort_sheet_by_col", {"col_num": col, "order": order})])
    if kind == 1:
        r = rng.randint(2, len(grid))
        value = int(body[r - 2][3]) + rng.randint(1, 30)
        return Question(f"In the sheet '{name}', set the Stock of '{grid[r - 1][0]}' to {value}.",
                        [*base, ("update_cell", {"position": a1(r, 4), "value": value})])
    if kind == 2:
        col = 4 if name == "Inventory" else 2
        values = sorted({float(row[col - 1]) for row in body})
        limit = canonical(values[min(len(values) - 1, rng.randint(1, 2))])
        rows = [r for r, row in enumerate(grid, 1) if r > 1 and float(row[col - 1]) < float(limit)]
        return Question(f"In the sheet '{name}', delete every row whose {header[col - 1]} is below {limit}.",
                        [*base, ("delete_batch_data", {"dimension": "row", "index_list": rows})])
    if kind == 3:
        taken = {row[0] for row in body}
        student = rng.choice([s for s in STUDENTS if s not in taken] or ["Zoe Park"])
        marks = [rng.randint(50, 100) for _ in range(3)]
        return Question(f"In the sheet '{name}', add a row at the end for the student '{student}' with Math "
                        f"{marks[0]}, English {marks[1]} and Science {marks[2]}.",
                        [*base, ("insert_rows", {"values_list": [[student, *marks]], "row_idx": len(grid) + 1})])
    if kind == 4:
        col = rng.choice((3, 4))
        target = a1(len(grid) + 1, col)
        return Question(f"In the sheet '{name}', write the total of the column '{header[col - 1]}' into cell "
                        f"{target}, just below its last value.",
                        [*base, ("update_cell_by_formula", {"operator": "SUM", "start_position": a1(2, col),
                                                            "end_position": a1(len(grid), col),
                                                            "result_position": target})])
    if kind == 5:
        return Question(f"Delete the sheet '{name}' from the workbook.", [("del_sheet", {"name": name})])
    if kind == 6:
        totals = [sum(int(v) for v in row[1:4]) for row in body]
        return Question(f"In the sheet '{name}', add a column 'Total' at the right end holding each student's "
                        "Math + English + Science total.",
                        [*base, ("insert_cols", {"values_list": [["Total", *totals]], "col_idx": len(header) + 1})])
    category = rng.choice(sorted({row[1] for row in body}))
    pct = rng.choice((10, 20, 25))
    calls = [("update_cell", {"position": a1(r, 3), "value": round(float(row[2]) * (1 + pct / 100), 2)})
             for r, row in enumerate(grid, 1) if r > 1 and row[1] == category]
    return Question(f"In the sheet '{name}', raise the Price of every item in the category '{category}' by "
                    f"{pct}% (round to 2 decimals).", [*base, *calls])
