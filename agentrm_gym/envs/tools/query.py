"""Tool-Query: answer questions with the academia, movie and weather tools (AgentBoard's tool-query task)."""

from __future__ import annotations

import copy
import functools
import json
import random
from typing import Any, ClassVar

from agentrm_gym.envs.tools import academia, movie, weather
from agentrm_gym.envs.tools.answers import answers_match
from agentrm_gym.envs.tools.base import ToolEnv, parse_task_id
from agentrm_gym.envs.tools.calls import canonical_call, format_call
from agentrm_gym.envs.tools.question import Question
from agentrm_gym.envs.tools.schema import FINISH_QUERY, Tool, ToolError
from agentrm_gym.envs.tools.toolset import ToolSet, connect, serialize

#: Tool set name -> (module with build_database/make_question, ToolSet class).
QUERY_SETS: dict[str, tuple[Any, type[ToolSet]]] = {
    "academia": (academia, academia.AcademiaTools),
    "movie": (movie, movie.MovieTools),
    "weather": (weather, weather.WeatherTools),
}
TEST_PER_SET = 20
#: Most candidate answers (besides "unknown") in the admissible ``finish`` calls.
MAX_ANSWERS = 7
GIVE_UP = "unknown"
#: Redraws of a question that repeats a test question before the repeat is accepted.
MAX_DRAWS = 200


@functools.cache
def database_bytes(toolset: str, seed: int = 0) -> bytes:
    """The serialized database of a tool set (generated once per process, in well under a second)."""
    conn = QUERY_SETS[toolset][0].build_database(seed)
    try:
        return serialize(conn)
    finally:
        conn.close()


@functools.cache
def _question_db(toolset: str, seed: int) -> Any:
    return connect(database_bytes(toolset, seed))


def generate_question(toolset: str, split: str, index: int, seed: int = 0) -> Question:
    """The question of task ``{toolset}-{split}-{index}``.

    Deterministic. Test questions are distinct, and train questions never repeat a test question
    (a question is its goal text plus the user context, e.g. the current date).
    """
    if split == "test":
        return _test_questions(toolset, seed)[index]
    return _draw(toolset, f"{toolset}-train-{index}-{seed}", index, seed, _test_keys(toolset, seed))


def _key(question: Question) -> tuple[str, str]:
    return question.goal, json.dumps(question.context, sort_keys=True)


def _draw(toolset: str, rng_key: str, kind: int, seed: int, taken: frozenset | set) -> Question:
    module, _ = QUERY_SETS[toolset]
    conn = _question_db(toolset, seed)
    rng = random.Random(rng_key)
    question = module.make_question(conn, rng, kind)
    for _ in range(MAX_DRAWS):  # bounded: a template with few questions must not hang a reset
        if _key(question) not in taken:
            break
        question = module.make_question(conn, rng, kind)
    return question


@functools.cache
def _test_questions(toolset: str, seed: int) -> tuple[Question, ...]:
    questions: list[Question] = []
    for i in range(TEST_PER_SET):
        questions.append(_draw(toolset, f"{toolset}-test-{i}-{seed}", i, seed, {_key(q) for q in questions}))
    return tuple(questions)


@functools.cache
def _test_keys(toolset: str, seed: int) -> frozenset[tuple[str, str]]:
    return frozenset(_key(q) for q in _test_questions(toolset, seed))


class ToolQueryEnv(ToolEnv):
    """Answer a question by calling the academia, movie or weather tools, then finish with the answer.

    ## Description
    AgentBoard's Tool-Query task on generated data: a citation network (academia), a film database
    (movie) and a year of daily weather for generated cities (weather), each an SQLite database built
    deterministically in memory. Questions are single- and multi-hop (e.g. "Which organization is the
    first author of the paper 'X' affiliated with?") with a gold tool-call path and answer. The test
    split has 60 tasks (20 per tool set, ids ``academia-test-0`` ...); the train split ``num_train`` per set.

    ## Action Space
    ``Action: <tool> with Action Input: {json}`` (the ``Action:`` prefix is optional); ``instruction()``
    lists the current tool set's tools and their arguments. ``finish with Action Input: {"answer": ...}``
    ends the episode. Malformed JSON, unknown tools, missing, unknown or mistyped arguments and unknown
    entities give an ``Error: ...`` observation naming the problem and ``action_valid=False``.
    ``admissible_actions`` is a sample (at most 60, sorted, deterministic per state) of the valid calls an
    agent could form from what it has seen, never from the gold path: the zero-argument tools; calls on
    the entities the goal names (quoted titles, capitalised names, dates, numbers) or the outputs showed
    (titles, authors, ids, coordinates, dates, AQI values), for each tool whose arguments they fit, e.g.
    ``authorNodeCheck`` on a seen author once AuthorNet is loaded, or ``get_historical_temp`` on seen
    coordinates with the goal's dates and the days around a seen current date; and ``finish`` with
    ``"unknown"`` plus up to 7 candidate answers sampled from the values tool outputs showed and the
    counts and sums of the lists they held (right and wrong alike). At reset the only answer offered is
    ``"unknown"``; the gold answer is listed only after an output has shown it (or, for a count or a
    sum, the list it comes from). A uniformly random agent over this list solves few tasks.

    ## Observation Space
    The tool's result as JSON or text, e.g. ``{"title": "...", "authors": [...], "year": 2019, ...}``.

    ## Rewards
    The increase of the progress rate: the fraction of the gold path's tool outputs that have appeared in
    an observation (AgentBoard's subgoal matching); 1 when the final answer is right.

    ## Starting State / Episode End
    Reset loads the task's tool set on a fresh database. Terminates on ``finish`` (success when the answer
    matches the gold answer after normalising case, spaces and numbers); truncated at 30 steps.

    ## Arguments
    ``split`` ("train" or "test"), ``num_train`` (train tasks per tool set), ``toolsets`` (the sets to use),
    ``seed`` (the database generation seed), ``perturbation`` (0..4: renamed tools, e.g. ``fetch_movie_cast``,
    ``submit``, and reworded questions; see :mod:`agentrm_gym.perturbation`).

    ## Version History
    v0: initial version; admissible actions built from seen entities only (they used to list the gold
    calls).
    """

    task_name = "ToolQuery"
    toolsets: ClassVar[dict[str, type[ToolSet]]] = {name: cls for name, (_, cls) in QUERY_SETS.items()}
    command_vocabulary = ("loadPaperNet with Action Input: {}", "get_user_current_date with Action Input: {}")
    perturbation_goals = ((r"^(Which|What|Who|How|When|Where) ", lambda m: f"Find out {m.group(1).lower()} "),
                          (r"\?$", "."))
    perturbation_goal_frame = "Question: {goal}"

    def __init__(self, split: str = "train", render_mode: str | None = None, num_train: int = 500,
                 toolsets: tuple[str, ...] | list[str] = tuple(QUERY_SETS), seed: int = 0, perturbation: int = 0):
        super().__init__(split=split, render_mode=render_mode, perturbation=perturbation)
        unknown = [s for s in toolsets if s not in QUERY_SETS]
        if unknown or not toolsets:
            raise ValueError(f"unknown tool sets {unknown}; choose from {', '.join(QUERY_SETS)}")
        if num_train < 1:
            raise ValueError(f"num_train must be >= 1, got {num_train}")
        self.num_train = num_train
        self.sets = tuple(toolsets)
        self.db_seed = seed
        self._conns: dict[str, Any] = {}
        self.question: Question | None = None
        self.gold_outputs: list[str] = []
        self.seen_outputs: set[int] = set()
        self.answer: Any = None
        self.correct = False

    # ----------------------------------------------------------- tasks
    def task_ids(self, split: str = "test") -> list[str]:
        sizes = {"test": TEST_PER_SET, "train": self.num_train}
        if split not in sizes:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return [f"{s}-{split}-{i}" for s in self.sets for i in range(sizes[split])]

    def _load_task(self, task_id: str) -> tuple[str, str]:
        toolset, split, index = parse_task_id(task_id, {"test": TEST_PER_SET, "train": self.num_train}, self.sets)
        if toolset not in self._conns:  # read-only for the agent, so one copy per env and tool set
            self._conns[toolset] = connect(database_bytes(toolset, self.db_seed))
        question = generate_question(toolset, split, index, self.db_seed)
        self.question = question
        self.gold_calls = list(question.calls)
        self.gold_outputs = self._gold_outputs(toolset, question)
        self.tools = self.toolsets[toolset](self._conns[toolset], question.context)
        self.made_calls = set()
        self.seen_outputs = set()
        self.answer = None
        self.correct = False
        self._reset_knowledge(question.goal)
        return question.goal, self.first_observation

    def _gold_outputs(self, toolset: str, question: Question) -> list[str]:
        tools = self.toolsets[toolset](self._conns[toolset], question.context)
        try:
            return [tools.call(name, args) for name, args in question.calls]
        except ToolError as exc:  # a generator bug, not an agent error
            raise RuntimeError(f"gold call of {question.goal!r} failed: {exc}") from exc

    # ----------------------------------------------------------- dynamics
    def finish_tool(self) -> Tool:
        return FINISH_QUERY

    def _on_call(self, tool: str, args: dict[str, Any], observation: str) -> None:
        super()._on_call(tool, args, observation)
        for i, gold in enumerate(self.gold_outputs):
            if observation == gold:
                self.seen_outputs.add(i)

    def _finish_candidates(self, rng: random.Random) -> list[dict[str, Any]]:
        """``unknown`` and up to :data:`MAX_ANSWERS` values that tool outputs have shown (a seeded sample)."""
        answers = self.knowledge.answers()
        if len(answers) > MAX_ANSWERS:
            answers = rng.sample(answers, MAX_ANSWERS)
        return [{"answer": GIVE_UP}, *({"answer": a} for a in answers)]

    def _on_finish(self, args: dict[str, Any]) -> str:
        self.answer = args["answer"]
        assert self.question is not None
        self.correct = answers_match(self.answer, self.question.answer)
        return f"You have finished the task with the answer: {self.answer}."

    def _progress(self) -> float:
        if not self.gold_outputs:
            return 0.0
        return len(self.seen_outputs) / len(self.gold_outputs)

    def _success(self) -> bool:
        return self.correct

    def expert_action(self) -> str | None:
        """The first gold call whose output has not been observed yet, then ``finish`` with the answer."""
        if self.question is None or self._terminated:
            return None
        for i, (tool, args) in enumerate(self.gold_calls):
            if i not in self.seen_outputs:
                return format_call(tool, args)
        return format_call("finish", {"answer": self.question.answer})

    def _next_gold_call(self) -> str | None:
        return self.expert_action()

    # ----------------------------------------------------------- snapshots
    def _get_state(self) -> Any:
        assert self.tools is not None
        # the session (loaded graphs, ...) is a mutable dict the tools keep changing: copy it, so that a later
        # call cannot reach into the snapshot
        return {"session": copy.deepcopy(self.tools.session), "made": sorted(self.made_calls),
                "seen": sorted(self.seen_outputs),
                "answer": self.answer, "correct": self.correct, "knowledge": self.knowledge.to_state()}

    def _set_state(self, state: Any) -> None:
        assert self.tools is not None
        self.tools.session = copy.deepcopy(state["session"])
        self.made_calls = set(state["made"])
        self.seen_outputs = set(state["seen"])
        self.answer = state["answer"]
        self.correct = state["correct"]
        self._set_knowledge(state["knowledge"])

    def gold_answer(self) -> Any:
        """The current task's gold answer (for tests and evaluation)."""
        return None if self.question is None else self.question.answer


__all__ = ["QUERY_SETS", "ToolQueryEnv", "canonical_call", "generate_question"]
