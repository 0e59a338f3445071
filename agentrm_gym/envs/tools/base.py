"""The env base of the tool tasks: :class:`ToolEnv`, shared by Tool-Query and Tool-Operation.

It owns the parse/dispatch step (text to call, call to the current
:class:`~agentrm_gym.envs.tools.toolset.ToolSet`, errors to observations), the ``finish`` tool, the
instruction text and the admissible-action list, which is built only from what the agent has seen
(:mod:`~agentrm_gym.envs.tools.knowledge`); also the task-id format of both envs.
"""

from __future__ import annotations

import functools
import json
import random
import re
from typing import Any, ClassVar

from agentrm_gym.core import StepOutcome, TextEnv, UnknownTask
from agentrm_gym.envs.tools.calls import FORMAT_HINT, canonical_call, format_call, parse_action
from agentrm_gym.envs.tools.knowledge import Knowledge
from agentrm_gym.envs.tools.schema import Tool, ToolError, check_args, clip
from agentrm_gym.envs.tools.toolset import ToolSet
from agentrm_gym.perturbation import Perturbation, Phrase

#: Most actions in the admissible list, and most dry runs spent building it.
ADMISSIBLE_CAP = 60
MAX_DRY_RUNS = 150
#: Longest observation a tool call returns: a longer result (a whole large sheet, say) is cut to this many
#: characters and ends with a note giving its full length. Real outputs of the tasks stay under 1,000.
MAX_OBSERVATION_CHARS = 16_000


def cap_observation(text: str, limit: int = MAX_OBSERVATION_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with a note of the cut when it was longer."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[output truncated: {len(text)} characters, the limit is {limit}]"


#: ``perturbation >= 1``: a tool's leading verb renamed ("get_movie_cast" -> "fetch_movie_cast",
#: "loadPaperNet" -> "buildPaperNet", "paperNodeCheck" -> "paperNodeInspect", "finish" -> "submit").
TOOL_VERBS = {"get": "fetch", "update": "modify", "delete": "remove", "del": "drop", "complete": "finalize",
              "check": "verify", "open": "load", "insert": "add", "sort": "order", "filter": "select", "load": "build"}


def renamed_tool(name: str) -> str:
    """A tool's name in the perturbed grammar."""
    if name == "finish":
        return "submit"
    head = re.match(r"[a-z]+", name)
    if head is not None and head.group(0) in TOOL_VERBS:
        return TOOL_VERBS[head.group(0)] + name[head.end():]
    return name[: -len("Check")] + "Inspect" if name.endswith("Check") else f"use_{name}"


@functools.lru_cache(maxsize=16)
def tool_perturbation(names: tuple[str, ...], goal_rules: tuple[Phrase, ...], goal_frame: str) -> Perturbation:
    """The renamed grammar of a tool set (``names`` includes ``finish``)."""
    new = {n: renamed_tool(n) for n in names}
    renames = [pair for n in names for pair in ((f"Action: {n} {{input}}", f"Action: {new[n]} {{input}}"),
                                                (f"{n} {{input}}", f"{new[n]} {{input}}"),
                                                (f"Action: {n}", f"Action: {new[n]}"), (n, new[n]))]
    tools = sorted((n for n in names if n != "finish"), key=len, reverse=True)
    phrases: list[Phrase] = [(r"\b(" + "|".join(map(re.escape, tools)) + r")\b", lambda m: new[m.group(1)]),
                             (r"'finish'", "'submit'"), (r"\bfinish(?= with Action Input)", "submit"),
                             (r"(?<=, )finish(?=\.)", "submit"), (r"(?m)^Name: finish\(", "Name: submit(")]

    def reject(env: Any, command: str) -> str:
        body = command.strip()
        body = body[7:].strip() if body[:7].lower() == "action:" else body
        tool = body.split(maxsplit=1)[0] if body else ""
        return f"Error: unknown tool '{clip(tool)}'. Valid tools: {', '.join(new[n] for n in env.tool_names())}."

    return Perturbation(renames, observation_phrases=phrases, instruction_phrases=phrases, goal_rules=goal_rules,
                        goal_frame=goal_frame, reject=reject)


def parse_task_id(task_id: str, sizes: dict[str, int], sets: Any) -> tuple[str, str, int]:
    """Split ``"<set>-<split>-<index>"`` and check it against the split sizes."""
    parts = task_id.split("-")
    if len(parts) == 3 and parts[0] in sets and parts[1] in sizes and parts[2].isdigit():
        index = int(parts[2])
        if index < sizes[parts[1]]:
            return parts[0], parts[1], index
    raise UnknownTask(f"{task_id!r}; ids look like 'academia-test-3' or 'movie-train-88' with sets "
                      f"{', '.join(sets)}, {sizes['test']} test and {sizes['train']} train tasks per set")


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

    Bounded input and output: an Action Input longer than ``MAX_INPUT_CHARS``, nested deeper than
    ``MAX_INPUT_DEPTH`` or holding a non-finite number is refused (:mod:`~agentrm_gym.envs.tools.calls`), and
    an observation is cut at :data:`MAX_OBSERVATION_CHARS` characters (:func:`cap_observation`).
    """

    toolsets: ClassVar[dict[str, type[ToolSet]]] = {}
    #: The goal paraphrases of ``perturbation >= 2`` (see :mod:`agentrm_gym.perturbation`).
    perturbation_goals: ClassVar[tuple[Phrase, ...]] = ()
    perturbation_goal_frame: ClassVar[str] = "Your goal: {goal}"
    invalid_action_message = "Error: the action is not valid. " + FORMAT_HINT
    first_observation = ("New trial starts. Once you have finished the goal, please remember to take "
                         "'finish' action to end this goal.")

    def __init__(self, split: str = "train", render_mode: str | None = None, perturbation: int = 0):
        super().__init__(split=split, render_mode=render_mode, perturbation=perturbation)
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

    def tool_names(self) -> list[str]:
        """The names of the current tool set's tools and ``finish`` (of every set before a reset)."""
        sets = [type(self.tools)] if self.tools is not None else list(self.toolsets.values())
        return [*dict.fromkeys(t.name for cls in sets for t in cls.tools), "finish"]

    def perturbation_table(self) -> Perturbation:
        return tool_perturbation(tuple(self.tool_names()), self.perturbation_goals, self.perturbation_goal_frame)

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
                return StepOutcome(cap_observation(self._on_finish(kwargs)), valid=True, terminal=True)
            observation = cap_observation(self.tools.call(tool, args))
        except ToolError as exc:
            return StepOutcome(cap_observation(f"Error: {exc}"), valid=False)
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
