"""Todo: a generated Todoist-like store (projects, tasks, due dates, durations) and AgentBoard's todo tools.

Each task id has its own store (4-6 projects with 3-6 tasks each), generated deterministically; the goal
asks for changes that need reading first ("complete every task in project X that takes longer than 45
minutes"). Ids are strings, as in the Todoist API.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

from agentrm_gym.envs.tools.knowledge import Knowledge, shifted
from agentrm_gym.envs.tools.question import Question
from agentrm_gym.envs.tools.schema import Param, Tool, ToolError
from agentrm_gym.envs.tools.toolset import ToolSet, connect

SCHEMA = {"projects": ("id",), "tasks": ("id",)}
PROJECTS = ("Home Renovation", "Marketing Plan", "Thesis", "Travel to Japan", "Fitness", "Garden", "Book Club",
            "Website Redesign", "Wedding", "Quarterly Report", "Moving House", "Language Learning")
VERBS = ("Buy", "Call", "Write", "Review", "Schedule", "Clean", "Plan", "Email", "Fix", "Prepare", "Read", "Update")
OBJECTS = ("paint samples", "the landlord", "chapter two", "budget sheet", "dentist visit", "garage", "flight",
           "newsletter", "leaky faucet", "slides", "contract", "passport photos", "running shoes", "seed order",
           "meeting notes", "gift list", "insurance form", "blog post")
COLORS = ("red", "blue", "green", "orange", "violet", "grey")
CITIES = ("Lisbon", "Toronto", "Osaka", "Nairobi", "Denver", "Prague")
#: Durations (minutes) offered in the admissible update_task calls besides those the agent has seen.
DURATION_DISTRACTORS = (15, 30, 60)
ID_RE = re.compile(r'"id": "(\d+)"')


def build_store(rng: random.Random) -> tuple[sqlite3.Connection, dict[str, Any]]:
    """A fresh store and the user context (current date and location) of one task."""
    conn = connect()
    conn.executescript(
        """
        CREATE TABLE projects (id TEXT PRIMARY KEY, name TEXT NOT NULL, color TEXT, is_favorite INTEGER,
                               "order" INTEGER);
        CREATE TABLE tasks (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, content TEXT NOT NULL,
                            description TEXT, due_date TEXT, duration INTEGER, duration_unit TEXT,
                            priority INTEGER, is_completed INTEGER, "order" INTEGER);
        """
    )
    today = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 330))
    contents = iter(rng.sample([f"{v} {o}" for v in VERBS for o in OBJECTS], 40))
    ids = iter(rng.sample(range(10**8), 50))
    for p, name in enumerate(rng.sample(PROJECTS, rng.randint(4, 6))):
        pid = str(2200000000 + next(ids))
        conn.execute("INSERT INTO projects VALUES (?, ?, ?, ?, ?)",
                     (pid, name, rng.choice(COLORS), int(rng.random() < 0.3), p + 1))
        for t in range(rng.randint(3, 6)):
            content = next(contents)
            due = (today + dt.timedelta(days=rng.randint(-6, 12))).isoformat() if rng.random() < 0.85 else None
            duration = rng.choice((15, 20, 30, 45, 60, 90, 120)) if rng.random() < 0.8 else None
            conn.execute(
                "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (str(7400000000 + next(ids)), pid, content, f"Remember to {content.lower()}.",
                 due, duration, "minute" if duration else None, rng.randint(1, 4), int(rng.random() < 0.1), t + 1))
    conn.commit()
    return conn, {"current_date": today.isoformat(), "current_location": rng.choice(CITIES)}


def _parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ToolError(f"{name} must be True or False, got {value!r}.")


class TodoTools(ToolSet):
    """AgentBoard's Todoist tools over the task's store."""

    name = "todo"
    tools = (
        Tool("get_user_current_date", "Get the user's current date.", (), "The current date, YYYY-MM-DD."),
        Tool("get_user_current_location", "Get the user's current city.", (), "The city name."),
        Tool("get_projects", "Get all projects in the Todoist account.", (),
             "A list of projects with id, name, order, color and is_favorite."),
        Tool("update_project", "Update a project (mark it favourite or not).",
             (Param("project_id", "string", "The id of the project."),
              Param("is_favorite", "any", "Whether the project is a favourite: True or False.")),
             "The updated project."),
        Tool("get_tasks", "Get the active (uncompleted) tasks of a project.",
             (Param("project_id", "string", "The id of the project."),),
             "A list of tasks with id, content, due date, priority and order."),
        Tool("get_task_description", "Get the description of a task.",
             (Param("task_id", "string", "The id of the task."),), "The task's content and description."),
        Tool("get_task_duration", "Get the duration of a task.",
             (Param("task_id", "string", "The id of the task."),), "The task's duration and its unit."),
        Tool("complete_task", "Mark a task as completed.",
             (Param("task_id", "string", "The id of the task."),), "A confirmation."),
        Tool("update_task", "Update a task's due date and/or duration (give at least one).",
             (Param("task_id", "string", "The id of the task."),
              Param("due_date", "string", "The new due date, YYYY-MM-DD.", required=False),
              Param("duration", "integer", "The new duration in minutes.", required=False)),
             "The updated task."),
        Tool("delete_task", "Delete a task.", (Param("task_id", "string", "The id of the task."),),
             "A confirmation."),
        Tool("check_valid_actions", "List the names of the valid tools.", (), "The tool names."),
    )

    def learn(self, tool: str, args: dict[str, Any], observation: str, knowledge: Knowledge) -> None:
        """Tell project ids from task ids by the tool that listed them."""
        kind = {"get_projects": "project", "update_project": "project"}.get(tool, "task")
        for match in ID_RE.finditer(observation):
            knowledge.add("obs", kind, match.group(1))
        if tool == "get_tasks":
            knowledge.add("obs", "project", args["project_id"])

    def candidates(self, knowledge: Knowledge) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every id-taking tool on every seen id, with seen and plausible due dates and durations.

        Due dates: the goal's dates, the current date once a tool returned it and the day after and a
        week after it, and due dates seen in outputs. Durations: the goal's numbers, the durations seen
        and a few common ones.
        """
        projects = knowledge.strings(("obs",), ("project",))
        tasks = knowledge.strings(("obs",), ("task",))
        dates = knowledge.dates(("goal",))
        for today in knowledge.current_dates():
            dates += [today, shifted(today, 1), shifted(today, 7)]
        dates = list(dict.fromkeys(dates + knowledge.dates(("obs",), ("due_date",))))
        durations = [v for v in knowledge.ints(("goal",)) + knowledge.ints(("obs",), ("duration",))
                     + list(DURATION_DISTRACTORS) if 0 < v <= 10_000]
        durations = list(dict.fromkeys(durations))
        for value in projects:
            yield "get_tasks", {"project_id": value}
            for flag in ("True", "False"):
                yield "update_project", {"project_id": value, "is_favorite": flag}
        for value in tasks:
            for name in ("get_task_description", "get_task_duration", "complete_task", "delete_task"):
                yield name, {"task_id": value}
            for day in dates:
                yield "update_task", {"task_id": value, "due_date": day}
            for minutes in durations:
                yield "update_task", {"task_id": value, "duration": minutes}

    def _project(self, project_id: str) -> sqlite3.Row:
        row = self.one('SELECT id, name, "order", color, is_favorite FROM projects WHERE id = ?', (project_id,))
        if row is None:
            raise ToolError(f"there is no project with id {project_id!r}; call get_projects to list the ids.")
        return row

    def _task(self, task_id: str) -> sqlite3.Row:
        row = self.one("SELECT * FROM tasks WHERE id = ? AND is_completed = 0", (task_id,))
        if row is None:
            raise ToolError(f"there is no active task with id {task_id!r}; call get_tasks to list the ids.")
        return row

    @staticmethod
    def _project_dict(row: sqlite3.Row) -> dict[str, Any]:
        return {"id": row["id"], "name": row["name"], "order": row["order"], "color": row["color"],
                "is_favorite": bool(row["is_favorite"])}

    def get_user_current_date(self) -> str:
        return self.context["current_date"]

    def get_user_current_location(self) -> str:
        return self.context["current_location"]

    def get_projects(self) -> list[dict[str, Any]]:
        return [self._project_dict(r) for r in
                self.all('SELECT id, name, "order", color, is_favorite FROM projects ORDER BY "order"')]

    def update_project(self, project_id: str, is_favorite: Any) -> dict[str, Any]:
        favorite = _parse_bool(is_favorite, "is_favorite")
        self._project(project_id)
        self.conn.execute("UPDATE projects SET is_favorite = ? WHERE id = ?", (int(favorite), project_id))
        return self._project_dict(self._project(project_id))

    def get_tasks(self, project_id: str) -> list[dict[str, Any]]:
        self._project(project_id)
        return [{"id": r["id"], "project_id": r["project_id"], "order": r["order"], "content": r["content"],
                 "is_completed": False, "priority": r["priority"], "due_date": r["due_date"]}
                for r in self.all('SELECT * FROM tasks WHERE project_id = ? AND is_completed = 0 ORDER BY "order"',
                                  (project_id,))]

    def get_task_description(self, task_id: str) -> dict[str, Any]:
        t = self._task(task_id)
        return {"id": t["id"], "content": t["content"], "description": t["description"]}

    def get_task_duration(self, task_id: str) -> dict[str, Any]:
        t = self._task(task_id)
        return {"id": t["id"], "content": t["content"], "duration": t["duration"],
                "duration_unit": t["duration_unit"]}

    def complete_task(self, task_id: str) -> str:
        t = self._task(task_id)
        self.conn.execute("UPDATE tasks SET is_completed = 1 WHERE id = ?", (task_id,))
        return f"Task '{t['content']}' ({task_id}) is completed."

    def update_task(self, task_id: str, due_date: str | None, duration: int | None) -> dict[str, Any]:
        if due_date is None and duration is None:
            raise ToolError("update_task needs due_date and/or duration.")
        self._task(task_id)
        if due_date is not None:
            try:
                due_date = dt.date.fromisoformat(due_date.strip()).isoformat()
            except ValueError:
                raise ToolError(f"due_date must be a date in YYYY-MM-DD format, got {due_date!r}.") from None
            self.conn.execute("UPDATE tasks SET due_date = ? WHERE id = ?", (due_date, task_id))
        if duration is not None:
            if duration <= 0:
                raise ToolError(f"duration must be a positive number of minutes, got {duration}.")
            self.conn.execute("UPDATE tasks SET duration = ?, duration_unit = 'minute' WHERE id = ?",
                              (duration, task_id))
        t = self._task(task_id)
        return {"id": t["id"], "content": t["content"], "due_date": t["due_date"], "duration": t["duration"],
                "duration_unit": t["duration_unit"]}

    def delete_task(self, task_id: str) -> str:
        t = self._task(task_id)
        self.conn.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
        return f"Task '{t['content']}' ({task_id}) is deleted."

    def check_valid_actions(self) -> list[str]:
        return [*self.tool_names(), "finish"]


# --------------------------------------------------------------------------- goals
def make_goal(conn: sqlite3.Connection, context: dict[str, Any], rng: random.Random, kind: int) -> Question:
    """One goal of template ``kind % 7`` with the gold calls that reach the gold state (may edit the seed)."""
    today = dt.date.fromisoformat(context["current_date"])
    projects = conn.execute("SELECT * FROM projects ORDER BY \"order\"").fetchall()
    active = conn.execute("SELECT * FROM tasks WHERE is_completed = 0 ORDER BY project_id, \"order\"").fetchall()
    proj = {p["id"]: p for p in projects}
    t = rng.choice(active)
    p = proj[t["project_id"]]
    base = [("get_projects", {}), ("get_tasks", {"project_id": p["id"]})]
    where = f"the task '{t['content']}' in project '{p['name']}'"
    kind %= 7
    if kind == 0:
        return Question(f"Mark {where} as completed.", [*base, ("complete_task", {"task_id": t["id"]})])
    if kind == 1:
        tasks = [x for x in active if x["project_id"] == p["id"]]
        # make sure the project has overdue work: move one or two tasks into the past in the seed
        for x in rng.sample(tasks, min(len(tasks), rng.randint(1, 2))):
            past = (today - dt.timedelta(days=rng.randint(1, 5))).isoformat()
            conn.execute("UPDATE tasks SET due_date = ? WHERE id = ?", (past, x["id"]))
        conn.commit()
        tomorrow = (today + dt.timedelta(days=1)).isoformat()
        overdue = conn.execute("SELECT id FROM tasks WHERE project_id = ? AND is_completed = 0 AND due_date < ? "
                               "ORDER BY \"order\"", (p["id"], today.isoformat())).fetchall()
        return Question(f"Move every overdue task in project '{p['name']}' to tomorrow.",
                        [("get_user_current_date", {}), *base,
                         *(("update_task", {"task_id": x[0], "due_date": tomorrow}) for x in overdue)])
    if kind == 2:
        return Question(f"Delete {where}.", [*base, ("delete_task", {"task_id": t["id"]})])
    if kind == 3:
        plain = [x for x in projects if not x["is_favorite"]] or projects
        q = rng.choice(plain)
        if q["is_favorite"]:
            conn.execute("UPDATE projects SET is_favorite = 0 WHERE id = ?", (q["id"],))
            conn.commit()
        return Question(f"Mark the project '{q['name']}' as a favourite.",
                        [("get_projects", {}), ("update_project", {"project_id": q["id"], "is_favorite": "True"})])
    if kind == 4:
        new = (today + dt.timedelta(days=rng.randint(2, 20))).isoformat()
        if new == t["due_date"]:
            new = (today + dt.timedelta(days=21)).isoformat()
        return Question(f"Set the due date of {where} to {new}.",
                        [*base, ("update_task", {"task_id": t["id"], "due_date": new})])
    if kind == 5:
        minutes = rng.choice([m for m in (10, 25, 30, 40, 75) if m != t["duration"]])
        return Question(f"Set the duration of {where} to {minutes} minutes.",
                        [*base, ("update_task", {"task_id": t["id"], "duration": minutes})])
    tasks = [x for x in active if x["project_id"] == p["id"]]
    limit = rng.choice((20, 30, 45))
    longest = max(tasks, key=lambda x: x["duration"] or 0)
    if (longest["duration"] or 0) <= limit:
        conn.execute("UPDATE tasks SET duration = 90, duration_unit = 'minute' WHERE id = ?", (longest["id"],))
        conn.commit()
    durations = {x[0]: x[1] for x in conn.execute(
        "SELECT id, duration FROM tasks WHERE project_id = ? AND is_completed = 0", (p["id"],)).fetchall()}
    return Question(f"Complete every task in project '{p['name']}' that takes longer than {limit} minutes.",
                    [*base, *(("get_task_duration", {"task_id": x["id"]}) for x in tasks),
                     *(("complete_task", {"task_id": x["id"]}) for x in tasks if (durations[x["id"]] or 0) > limit)])
