"""Tool-Operation: change a todo list or a spreadsheet with tools (AgentBoard's tool-operation task)."""

from __future__ import annotations

import copy
import functools
import random
from typing import Any, ClassVar

from agentrm_gym.envs.tools import sheet, todo
from agentrm_gym.envs.tools.base import ToolEnv, parse_task_id
from agentrm_gym.envs.tools.calls import format_call
from agentrm_gym.envs.tools.question import Question
from agentrm_gym.envs.tools.schema import FINISH_OPERATION, Tool, ToolError
from agentrm_gym.envs.tools.store import change_score, changes, dump_state
from agentrm_gym.envs.tools.toolset import ToolSet, connect, serialize

#: Tool set name -> (module with build_store/make_goal/SCHEMA, ToolSet class).
OPERATION_SETS: dict[str, tuple[Any, type[ToolSet]]] = {
    "todo": (todo, todo.TodoTools),
    "sheet": (sheet, sheet.SheetTools),
}
TEST_PER_SET = 20


class OperationTask:
    """A generated Tool-Operation task: the seed store (bytes), the goal and the gold changes."""

    __slots__ = ("toolset", "question", "seed_db", "seed_state", "gold_changes")

    def __init__(self, toolset: str, question: Question, seed_db: bytes, seed_state: Any,
                 gold_changes: frozenset[tuple]):
        self.toolset = toolset
        self.question = question
        self.seed_db = seed_db
        self.seed_state = seed_state
        self.gold_changes = gold_changes


@functools.lru_cache(maxsize=512)
def generate_task(toolset: str, split: str, index: int) -> OperationTask:
    """The task ``{toolset}-{split}-{index}``: build its store, its goal, and the gold state by running the
    gold calls on a copy (deterministic; generated in a few milliseconds and cached)."""
    module, tools_cls = OPERATION_SETS[toolset]
    rng = random.Random(f"{toolset}-{split}-{index}")
    conn, context = module.build_store(rng)
    question = module.make_goal(conn, context, rng, index)
    question.context = context
    conn.commit()
    seed_db = serialize(conn)
    seed_state = dump_state(conn, module.SCHEMA)
    tools = tools_cls(conn, context)
    try:
        for name, args in question.calls:
            tools.call(name, args)
    except ToolError as exc:  # a generator bug, not an agent error
        raise RuntimeError(f"gold call of {toolset}-{split}-{index} failed: {exc}") from exc
    gold = changes(seed_state, dump_state(conn, module.SCHEMA))
    conn.close()
    if not gold:
        raise RuntimeError(f"{toolset}-{split}-{index}: the goal changes nothing")
    return OperationTask(toolset, question, seed_db, seed_state, gold)


class ToolOperationEnv(ToolEnv):
    """Change a todo list or a spreadsheet with tools so that it reaches the goal state, then finish.

    ## Description
    AgentBoard's Tool-Operation task on generated stores: a Todoist-like todo list (projects and tasks
    with due dates, durations, descriptions, completion) and a workbook of named sheets. Every task id has
    its own store, and every episode works on its own in-memory SQLite copy of it, so episodes never see
    each other's writes. Goals need reading and writing ("Move every overdue task in project 'Thesis' to
    tomorrow", "Sort the sheet 'Sales' by the column 'Revenue' in descending order"). The test split has
    40 tasks (20 per tool set, ids ``todo-test-0``, ``sheet-test-0`` ...).

    ## Action Space
    ``Action: <tool> with Action Input: {json}`` (the ``Action:`` prefix is optional); ``instruction()``
    lists the tools of the task's set. ``finish with Action Input: {}`` ends the episode. Bad input
    (malformed JSON, unknown tools, missing, unknown or mistyped arguments, unknown ids) gives an
    ``Error: ...`` observation, ``action_valid=False`` and leaves the store unchanged (each call runs in a
    transaction). ``admissible_actions`` is a sample (at most 60, sorted, deterministic per state) of the
    valid calls an agent could form from what it has seen, never from the gold path: the zero-argument
    tools and ``finish``; reads and writes on the project and task ids the outputs listed, with due dates
    from the goal, the current date (once returned), the day and the week after it and the due dates
    seen, and durations from the goal's numbers, the durations seen and 15/30/60; ``open_sheet`` and
    ``del_sheet`` on the names the goal quotes; and, once the open sheet's size is known, cell reads,
    sorts, single row/column deletions, column formulas and ``update_cell`` with the goal's numbers or
    the distractors 0 and 1 on its cells. Computed values the goal only describes (a raised price, a
    column of totals) are not offered. A uniformly random agent over this list solves few tasks.

    ## Observation Space
    The tool's result as JSON or text (e.g. the updated sheet as a list of rows).

    ## Rewards
    The increase of the progress rate: (correct changes - wrong changes) / gold changes, clipped to
    [0, 1], where a change is a field of a row (or a deleted row) that differs from the seed store; 1 on
    success.

    ## Starting State / Episode End
    Reset restores the task's seed store. Success as soon as the store equals the gold state after a step
    (so the oracle needs no ``finish``); ``finish`` ends the episode either way; truncated at 30 steps.

    ## Arguments
    ``split`` ("train" or "test"), ``num_train`` (train tasks per tool set), ``toolsets`` (sets to use),
    ``perturbation`` (0..4: renamed tools, e.g. ``load_sheet``, ``submit``, and reworded goals; see
    :mod:`agentrm_gym.perturbation`).

    ## Version History
    v0: initial version; admissible actions built from seen entities only (they used to list the gold
    calls).
    """

    task_name = "ToolOperation"
    toolsets: ClassVar[dict[str, type[ToolSet]]] = {name: cls for name, (_, cls) in OPERATION_SETS.items()}
    command_vocabulary = ("get_projects with Action Input: {}", "get_all_values with Action Input: {}")
    perturbation_goals = ((r"^Mark the task ", "Flag the task "), (r"^Set the ", "Change the "),
                          (r"^Complete every task", "Mark as done every task"), (r"^Move ", "Reschedule "),
                          (r"^In the sheet '([^']*)', ", r"Working in the sheet '\1', "))
    perturbation_goal_frame = "Request: {goal}"

    def __init__(self, split: str = "train", render_mode: str | None = None, num_train: int = 300,
                 toolsets: tuple[str, ...] | list[str] = tuple(OPERATION_SETS), perturbation: int = 0):
        super().__init__(split=split, render_mode=render_mode, perturbation=perturbation)
        unknown = [s for s in toolsets if s not in OPERATION_SETS]
        if unknown or not toolsets:
            raise ValueError(f"unknown tool sets {unknown}; choose from {', '.join(OPERATION_SETS)}")
        if num_train < 1:
            raise ValueError(f"num_train must be >= 1, got {num_train}")
        self.num_train = num_train
        self.sets = tuple(toolsets)
        self.conn = connect()
        self.task: OperationTask | None = None
        self.finished = False
        self._changes_cache: tuple[int, frozenset[tuple]] | None = None

    # ----------------------------------------------------------- tasks
    def task_ids(self, split: str = "test") -> list[str]:
        sizes = {"test": TEST_PER_SET, "train": self.num_train}
        if split not in sizes:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return [f"{s}-{split}-{i}" for s in self.sets for i in range(sizes[split])]

    def _load_task(self, task_id: str) -> tuple[str, str]:
        toolset, split, index = parse_task_id(task_id, {"test": TEST_PER_SET, "train": self.num_train}, self.sets)
        self.task = generate_task(toolset, split, index)
        self.conn.deserialize(self.task.seed_db)
        self._changes_cache = None
        self.tools = self.toolsets[toolset](self.conn, self.task.question.context)
        self.gold_calls = list(self.task.question.calls)
        self.made_calls = set()
        self.finished = False
        self._reset_knowledge(self.task.question.goal)
        return self.task.question.goal, self.first_observation

    # ----------------------------------------------------------- dynamics
    def finish_tool(self) -> Tool:
        return FINISH_OPERATION

    def _on_finish(self, args: dict[str, Any]) -> str:
        self.finished = True
        state = "The store matches the goal." if self._at_gold() else "The store does not match the goal."
        return f"You have finished the task. {state}"

    def current_changes(self) -> frozenset[tuple]:
        """The changes the episode has made to the seed store so far.

        Cached until the connection reports another row change (``total_changes``) or the store is
        reloaded; progress and success both read it every step.
        """
        assert self.task is not None
        key = self.conn.total_changes
        if self._changes_cache is None or self._changes_cache[0] != key:
            schema = OPERATION_SETS[self.task.toolset][0].SCHEMA
            self._changes_cache = (key, changes(self.task.seed_state, dump_state(self.conn, schema)))
        return self._changes_cache[1]

    def _at_gold(self) -> bool:
        return self.task is not None and self.current_changes() == self.task.gold_changes

    def _progress(self) -> float:
        if self.task is None:
            return 0.0
        return change_score(self.task.gold_changes, self.current_changes())

    def _success(self) -> bool:
        return self._at_gold()

    def expert_action(self) -> str | None:
        """The first gold call not made yet; ``finish`` once all are made (or nothing is left to do)."""
        if self.task is None or self._terminated:
            return None
        return self._next_gold_call() or format_call("finish", {})

    # ----------------------------------------------------------- snapshots
    def _get_state(self) -> Any:
        assert self.tools is not None
        # the session (open sheet, ...) is a mutable dict the tools keep changing: copy it, so that a later call
        # cannot reach into the snapshot
        return {"db": serialize(self.conn), "session": copy.deepcopy(self.tools.session),
                "made": sorted(self.made_calls),
                "finished": self.finished, "knowledge": self.knowledge.to_state()}

    def _set_state(self, state: Any) -> None:
        assert self.tools is not None
        self.conn.deserialize(state["db"])
        self._changes_cache = None
        self.tools.session = copy.deepcopy(state["session"])
        self.made_calls = set(state["made"])
        self.finished = state["finished"]
        self._set_knowledge(state["knowledge"])
