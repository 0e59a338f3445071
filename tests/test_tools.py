"""Tool-Query and Tool-Operation: parsing, bad input, progress, success, isolation, snapshots, oracle."""

from __future__ import annotations

import pickle
import random

import gymnasium as gym
import pytest

from agentrm_gym.core import restore, snapshot
from agentrm_gym.envs.tools.answers import answers_match
from agentrm_gym.envs.tools.base import ADMISSIBLE_CAP
from agentrm_gym.envs.tools.calls import format_call, parse_action
from agentrm_gym.envs.tools.operation import ToolOperationEnv, generate_task
from agentrm_gym.envs.tools.query import ToolQueryEnv, generate_question
from agentrm_gym.envs.tools.schema import FINISH_QUERY, Param, Tool, ToolError, check_args
from agentrm_gym.envs.tools.sheet import canonical, parse_a1
from agentrm_gym.envs.tools.store import change_score
from agentrm_gym.envs.tools.toolset import serialize

INJECTIONS = ["x'); DROP TABLE tasks; --", "' OR '1'='1", "Robert'); DROP TABLE cells;--", "1; DELETE FROM papers"]


@pytest.fixture
def query() -> ToolQueryEnv:
    env = ToolQueryEnv(split="test")
    yield env
    env.close()


@pytest.fixture
def operation() -> ToolOperationEnv:
    env = ToolOperationEnv(split="test")
    yield env
    env.close()


def call(tool: str, **args) -> str:
    return format_call(tool, args)


def content(env: ToolOperationEnv) -> list[str]:
    """The store as SQL text (the serialized bytes also hold a change counter that any transaction bumps)."""
    return list(env.conn.iterdump())


def table_counts(env: ToolOperationEnv) -> dict[str, int]:
    names = [r[0] for r in env.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {n: env.conn.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0] for n in names}


# --------------------------------------------------------------------------- parsing and arguments
@pytest.mark.parametrize("text", [
    'Action: paperNodeCheck with Action Input: {"node": "A B"}',
    'paperNodeCheck with Action Input: {"node": "A B"}',
    "paperNodeCheck with Action Input: {'node': 'A B'}",
    'action:  paperNodeCheck  with action input:{"node": "A B"}  ',
])
def test_parse_action_accepts_the_agentboard_format(text):
    assert parse_action(text) == ("paperNodeCheck", {"node": "A B"})


def test_parse_action_empty_input_and_errors():
    assert parse_action("loadPaperNet with Action Input: {}") == ("loadPaperNet", {})
    assert parse_action("Action: loadPaperNet with Action Input:") == ("loadPaperNet", {})
    with pytest.raises(ToolError, match="not valid JSON"):
        parse_action('paperNodeCheck with Action Input: {"node": ')
    with pytest.raises(ToolError, match="must be a JSON object"):
        parse_action('paperNodeCheck with Action Input: ["node"]')
    with pytest.raises(ToolError, match="has no Action Input"):
        parse_action("loadPaperNet", known=["loadPaperNet"])
    with pytest.raises(ToolError, match="could not parse"):
        parse_action("go north")


def test_check_args_names_the_problem():
    tool = Tool("t", "test", (Param("n", "integer", "n"), Param("s", "string", "s", required=False),
                              Param("xs", "array[array[any]]", "xs", required=False)))
    assert check_args(tool, {"n": 3}) == {"n": 3, "s": None, "xs": None}
    with pytest.raises(ToolError, match="missing the argument 'n'"):
        check_args(tool, {})
    with pytest.raises(ToolError, match="unknown argument"):
        check_args(tool, {"n": 1, "bogus": 2})
    with pytest.raises(ToolError, match="must be integer, got boolean"):
        check_args(tool, {"n": True})
    with pytest.raises(ToolError, match="must be integer, got string"):
        check_args(tool, {"n": "3"})
    with pytest.raises(ToolError, match="must be array"):
        check_args(tool, {"n": 1, "xs": [1, 2]})
    assert check_args(tool, {"n": 1, "xs": [[1, "a", None]]})["xs"] == [[1, "a", None]]


@pytest.mark.parametrize(("given", "gold", "same"), [
    ("NeurIPS", "neurips", True), ("  Eastbrook   University. ", "Eastbrook University", True),
    ("2015", 2015, True), ("$120,000,000", 120000000, True), (7.3, "7.30", True), ("yes", "Yes", True),
    (True, "yes", True), ("12.34 km", 12.34, True), ("7.31", 7.3, False), ("ICML", "NeurIPS", False),
])
def test_answer_normalisation(given, gold, same):
    assert answers_match(given, gold) is same


def test_sheet_helpers():
    assert parse_a1("B3") == (3, 2) and parse_a1("aa10") == (10, 27)
    assert canonical(30) == canonical(30.0) == canonical("30.00") == "30"
    assert canonical("12.50") == "12.5" and canonical("Desk Lamp") == "Desk Lamp"
    with pytest.raises(ToolError):
        parse_a1("3B")


def test_change_score_counts_wrong_changes_against_progress():
    gold = frozenset({("t", (1,), "a", 1), ("t", (2,), "a", 1)})
    assert change_score(gold, frozenset()) == 0.0
    assert change_score(gold, frozenset({("t", (1,), "a", 1)})) == 0.5
    assert change_score(gold, frozenset({("t", (1,), "a", 1), ("t", (3,), "a", 9)})) == 0.0
    assert change_score(gold, gold) == 1.0


# --------------------------------------------------------------------------- Tool-Query
def test_query_bad_input_is_reported_not_raised(query):
    query.reset(options={"task_id": "academia-test-0"})
    cases = {
        "foo with Action Input: {}": "unknown tool 'foo'. Valid tools: loadPaperNet",
        "LoadPaperNet with Action Input: {}": "Did you mean 'loadPaperNet'?",
        'paperNodeCheck with Action Input: {"node": "x"': "not valid JSON",
        "paperNodeCheck with Action Input: {}": "missing the argument 'node'",
        'paperNodeCheck with Action Input: {"node": 3}': "must be string, got integer",
        'paperNodeCheck with Action Input: {"node": "x", "year": 1}': "unknown argument",
        'paperNodeCheck with Action Input: {"node": "x"}': "PaperNet is not loaded",
        'neighbourCheck with Action Input: {"graph": "CatNet", "node": "x"}': "unknown graph",
        "finish with Action Input: {}": "missing the argument 'answer'",
    }
    for action, message in cases.items():
        obs, reward, term, trunc, info = query.step(action)
        assert obs.startswith("Error: ") and message in obs, (action, obs)
        assert info["action_valid"] is False and reward == 0.0 and not term
    for text in INJECTIONS:
        query.step(call("loadPaperNet"))
        obs, *_, info = query.step(call("paperNodeCheck", node=text))
        assert "no paper titled" in obs and info["action_valid"] is False
    assert query._conns["academia"].execute("SELECT COUNT(*) FROM papers").fetchone()[0] > 100


def test_query_progress_counts_gold_outputs_and_finish_checks_answer(query):
    query.reset(options={"task_id": "academia-test-6"})  # 4-hop: paper -> first author -> org
    assert len(query.gold_calls) == 4 and query.progress == 0.0
    expected = [0.25, 0.5, 0.75, 1.0]
    for (tool, args), p in zip(query.gold_calls, expected, strict=True):
        obs, reward, term, _, info = query.step(format_call(tool, args))
        assert info["action_valid"] and info["progress"] == p and reward == pytest.approx(0.25)
    assert not info["success"]  # all outputs seen, but no answer yet
    obs, _, term, _, info = query.step(call("finish", answer="Nowhere College"))
    assert term and not info["success"]

    query.reset(options={"task_id": "academia-test-6"})
    for tool, args in query.gold_calls[:2]:
        query.step(format_call(tool, args))
    assert query.progress == 0.5
    answer = str(query.gold_answer()).upper() + " "
    obs, _, term, _, info = query.step(f'Action: finish with Action Input: {{"answer": "{answer}"}}')
    assert term and info["success"] and info["progress"] == 1.0


def test_query_questions_are_deterministic_and_train_avoids_test_goals():
    assert generate_question("movie", "test", 4) == generate_question("movie", "test", 4)
    sets = ("academia", "movie", "weather")
    test = {(q.goal, str(q.context)) for q in (generate_question(s, "test", i) for s in sets for i in range(20))}
    assert len(test) == 60
    train = {(q.goal, str(q.context)) for q in (generate_question(s, "train", i) for s in sets for i in range(60))}
    assert not train & test


def test_query_instruction_lists_the_current_tool_set(query):
    text = query.instruction()
    assert "loadPaperNet" in text and "get_movie_cast" in text and "get_elevation" in text
    query.reset(options={"task_id": "weather-test-0"})
    text = query.instruction()
    assert "get_historical_temp(latitude, longitude, start_date, end_date)" in text
    assert "latitude (Type: number)" in text and "loadPaperNet" not in text and "finish(answer)" in text


def test_query_weather_context_and_date_rules(query):
    query.reset(options={"task_id": "weather-test-4"})
    today = query.step(call("get_user_current_date"))[0]
    lat, lon = 10.0, 10.0
    obs, *_, info = query.step(call("get_current_temp", latitude=lat, longitude=lon, current_date="2020-01-01"))
    assert info["action_valid"] is False and "today's date" in obs
    city = query.step(call("get_user_current_location"))[0]
    obs, *_, info = query.step(call("get_latitude_longitude", name=city))
    assert info["action_valid"] and city in obs
    import json

    place = json.loads(obs)["results"][0]
    obs, *_, info = query.step(call("get_historical_temp", latitude=place["latitude"],
                                    longitude=place["longitude"], start_date=today, end_date=today))
    assert info["action_valid"] is False and "historical data ends" in obs


# --------------------------------------------------------------------------- Tool-Operation
def test_operation_injection_and_bad_input_leave_the_store_intact(operation):
    operation.reset(options={"task_id": "todo-test-0"})
    before, counts = content(operation), table_counts(operation)
    for text in INJECTIONS:
        for action in (call("get_tasks", project_id=text), call("delete_task", task_id=text),
                       call("update_project", project_id=text, is_favorite="True"),
                       call("update_task", task_id=text, due_date="2024-01-01")):
            obs, *_, info = operation.step(action)
            assert obs.startswith("Error: ") and info["action_valid"] is False
    for action in ['delete_task with Action Input: {"task_id": 12}', "complete_task with Action Input: {",
                   "drop_table with Action Input: {}", "update_task with Action Input: {\"task_id\": \"1\"}"]:
        obs, *_, info = operation.step(action)
        assert obs.startswith("Error: ") and info["action_valid"] is False
    assert content(operation) == before and table_counts(operation) == counts
    assert operation.current_changes() == frozenset()

    operation.reset(options={"task_id": "sheet-test-0"})
    counts = table_counts(operation)
    obs, *_, info = operation.step(call("open_sheet", name=INJECTIONS[2]))
    assert "no sheet named" in obs and info["action_valid"] is False
    operation.step(call("open_sheet", name="Inventory"))
    before = content(operation)
    for action in (call("update_range", start_position="A1", end_position="B2", values_list=[["x"]]),
                   call("delete_batch_data", dimension="row", index_list=[99]),
                   call("sort_sheet_by_col", col_num=2, order="sideways"),
                   call("update_cell", position="A0", value=1),
                   call("get_value_by_formula", operator="SUM", start_position="A1", end_position="A3")):
        obs, *_, info = operation.step(action)
        assert obs.startswith("Error: ") and info["action_valid"] is False, action
    assert content(operation) == before
    # an injection string as a cell value is stored as plain text
    obs, *_, info = operation.step(call("update_cell", position="A2", value=INJECTIONS[2]))
    assert info["action_valid"] and table_counts(operation) == counts
    assert operation.step(call("get_cell_value", position="A2"))[0] == INJECTIONS[2]


def test_operation_success_on_gold_state_and_wrong_changes_cost_progress(operation):
    operation.reset(options={"task_id": "todo-test-6"})  # complete every long task in a project
    writes = [(t, a) for t, a in operation.gold_calls if t == "complete_task"]
    reads = [(t, a) for t, a in operation.gold_calls if t != "complete_task"]
    for tool, args in reads:
        operation.step(format_call(tool, args))
    assert operation.progress == 0.0
    obs, reward, term, _, info = operation.step(format_call(*writes[0]))
    assert info["progress"] == pytest.approx(1 / len(writes)) and reward > 0
    for tool, args in writes[1:]:
        obs, reward, term, _, info = operation.step(format_call(tool, args))
    assert term and info["success"] and info["progress"] == 1.0

    operation.reset(options={"task_id": "todo-test-0"})  # complete one task
    target = operation.gold_calls[-1][1]["task_id"]
    other = operation.conn.execute("SELECT id FROM tasks WHERE is_completed = 0 AND id != ?", (target,)).fetchone()[0]
    operation.step(call("complete_task", task_id=other))
    obs, _, term, _, info = operation.step(call("complete_task", task_id=target))
    assert not term and not info["success"] and info["progress"] == 0.0  # one right, one wrong
    obs, _, term, _, info = operation.step(call("finish"))
    assert term and not info["success"] and "does not match" in obs


def test_operation_episodes_are_isolated_and_reset_restores_the_seed():
    a, b = ToolOperationEnv(split="test"), ToolOperationEnv(split="test")
    a.reset(options={"task_id": "sheet-test-5"})  # delete a sheet
    b.reset(options={"task_id": "sheet-test-5"})
    seed = content(b)
    for tool, args in a.gold_calls:
        a.step(format_call(tool, args))
    assert a.success and content(b) == seed and content(a) != seed
    a.reset(options={"task_id": "sheet-test-5"})
    assert content(a) == seed and a.progress == 0.0


def test_operation_snapshot_restores_the_store_exactly():
    env = gym.make("agentrm/ToolOperation-v0", split="test")
    try:
        env.reset(options={"task_id": "sheet-test-7"})  # several price updates
        base = env.unwrapped
        calls = [format_call(t, a) for t, a in base.gold_calls]
        for action in calls[:2]:
            env.step(action)
        env.step(call("update_cell", position="B2", value="Misc"))
        assert base.progress == 0.0 and base.current_changes()
        state = pickle.loads(pickle.dumps(snapshot(env)))
        db, progress = serialize(base.conn), base.progress
        env.step(call("delete_batch_data", dimension="row", index_list=[2]))
        env.step(call("open_sheet", name="Grades"))
        assert serialize(base.conn) != db
        restore(env, state)
        assert serialize(base.conn) == db and base.progress == progress
        assert base.tools.session == {"sheet": "Inventory"}
        # and across tasks: restoring after another task was loaded
        env.reset(options={"task_id": "todo-test-3"})
        restore(env, state)
        assert serialize(base.conn) == db and base.task_id == "sheet-test-7"
    finally:
        env.close()


def test_admissible_actions_are_valid(query, operation):
    for env, task_id in ((query, "movie-test-7"), (query, "weather-test-5"), (operation, "todo-test-1"),
                         (operation, "sheet-test-2")):
        env.reset(options={"task_id": task_id})
        for tool, args in env.gold_calls[:2]:  # a state with observations, so argument calls are listed
            env.step(format_call(tool, args))
        acts = env.admissible_actions()
        assert acts and len(acts) <= ADMISSIBLE_CAP and acts == sorted(acts)
        assert any(json_args(a) for a in acts)
        state = env.snapshot()
        for action in acts:
            env.restore(state)
            obs, *_, info = env.step(action)
            assert info["action_valid"], (task_id, action, obs)
        env.restore(state)
        assert env.admissible_actions() == acts  # a function of the state


def json_args(action: str) -> dict:
    import json

    return json.loads(action.split("Action Input:", 1)[1])


def test_admissible_actions_hold_only_seen_entities(query, operation):
    for task_id in query.task_ids("test"):
        query.reset(options={"task_id": task_id})
        gold = query.gold_answer()
        finishes = [json_args(a)["answer"] for a in query.admissible_actions() if a.startswith("finish")]
        assert finishes == ["unknown"], task_id  # no tool output yet, so no candidate answers
        assert not any(answers_match(f, gold) for f in finishes), task_id
    for task_id in operation.task_ids("test"):
        operation.reset(options={"task_id": task_id})
        ids = {a.get("task_id") or a.get("project_id") for _, a in operation.gold_calls} - {None}
        text = " ".join(operation.admissible_actions())
        assert not any(i in text for i in ids), task_id  # ids are unknown until a tool lists them
    # a wrong answer the outputs showed is offered next to the right one
    query.reset(options={"task_id": "academia-test-0"})  # venue of a paper
    for tool, args in query.gold_calls:
        query.step(format_call(tool, args))
    finishes = [json_args(a)["answer"] for a in query.admissible_actions() if a.startswith("finish")]
    assert len(finishes) >= 4 and sum(answers_match(f, query.gold_answer()) for f in finishes) <= 1


@pytest.mark.parametrize("env_cls", [ToolQueryEnv, ToolOperationEnv])
def test_admissible_actions_cover_the_oracle_path(env_cls):
    """Gold calls are inferable from the goal and outputs, so the list usually holds the oracle's next call."""
    env = env_cls(split="test")
    hits = total = 0
    for task_id in env.task_ids("test"):
        env.reset(options={"task_id": task_id})
        while not env._terminated:
            expert = env.expert_action()
            hits += expert in env.admissible_actions()
            total += 1
            env.step(expert)
    assert hits / total > 0.6


@pytest.mark.parametrize(("env_cls", "limit"), [(ToolQueryEnv, 0.3), (ToolOperationEnv, 0.3)])
def test_random_admissible_policy_rarely_succeeds(env_cls, limit):
    """Uniformly random admissible actions must not solve the tasks (the list leaks no gold plan)."""
    env = env_cls(split="test")
    rng = random.Random(0)
    ids = env.task_ids("test")
    wins = 0
    for task_id in ids:
        obs, info = env.reset(seed=0, options={"task_id": task_id})
        term = trunc = False
        while not (term or trunc) and info["steps"] < 30:
            obs, _, term, trunc, info = env.step(rng.choice(info["admissible_actions"]))
        wins += info["success"]
    assert wins / len(ids) < limit


def test_generated_tasks_are_deterministic():
    a = generate_task("todo", "train", 5)
    generate_task.cache_clear()
    b = generate_task("todo", "train", 5)
    assert a.seed_db == b.seed_db and a.gold_changes == b.gold_changes and a.question == b.question


@pytest.mark.parametrize("env_cls", [ToolQueryEnv, ToolOperationEnv])
def test_oracle_solves_every_test_task(env_cls):
    env = env_cls(split="test")
    for task_id in env.task_ids("test"):
        env.reset(options={"task_id": task_id})
        steps = 0
        while not env._terminated and steps < 30:
            env.step(env.expert_action())
            steps += 1
        assert env.success and env.progress == 1.0, task_id


def test_sheet_positions_and_ranges_are_bounded_before_any_grid_is_built(operation):
    from agentrm_gym.envs.tools.sheet import MAX_CELLS, MAX_COLS, MAX_ROWS

    operation.reset(options={"task_id": "sheet-test-0"})
    operation.step(call("open_sheet", name="Inventory"))
    before = operation.step(call("get_all_values"))[0]
    limit = f"at most {MAX_ROWS} rows and {MAX_COLS} columns"
    for tool, args, message in [
        ("update_cell", {"position": "ZZZ999999", "value": 1}, limit),  # used to build 999,999 x 18,278 cells
        ("update_cell", {"position": "A1001", "value": 1}, limit),
        ("update_cell", {"position": "CW1", "value": 1}, limit),
        ("update_cell", {"position": "CV1000", "value": 1}, f"exceed {MAX_CELLS} cells"),
        ("update_cell_by_formula", {"operator": "SUM", "start_position": "C2", "end_position": "C3",
                                    "result_position": "ZZZ999999"}, limit),
        ("update_range", {"start_position": "ZZZ999998", "end_position": "ZZZ999999", "values_list": [[1], [2]]},
         limit),
        ("get_range_values", {"start_position": "A1", "end_position": "ZZ20000"}, limit),  # used to be 56 MB
        ("get_range_values", {"start_position": "A1", "end_position": "CV1000"}, f"at most {MAX_CELLS} cells"),
        ("get_value_by_formula", {"operator": "COUNT", "start_position": "A1", "end_position": "CV1000"},
         f"at most {MAX_CELLS} cells"),
        ("get_cell_value", {"position": "ZZZ999999"}, limit),
        ("update_note", {"position": "ZZZ999999", "content": "x"}, limit),
        ("get_A1_annotation", {"row": 10 ** 12, "col": 5}, f"between 1 and {MAX_ROWS}"),
        ("update_cell", {"position": "A1", "value": "x" * 5000}, "at most 2000 characters"),
    ]:
        obs, reward, _, _, info = operation.step(call(tool, **args))
        assert obs.startswith("Error: ") and message in obs, (tool, args, obs)
        assert info["action_valid"] is False and reward == 0.0
    assert operation.step(call("get_all_values"))[0] == before


def test_tool_observations_are_capped(operation):
    from agentrm_gym.envs.tools.base import MAX_OBSERVATION_CHARS

    operation.reset(options={"task_id": "sheet-test-0"})
    operation.step(call("open_sheet", name="Inventory"))
    obs, *_, info = operation.step(call("update_cell", position="CV200", value=1))  # 20,000 cells: ~80 KB
    assert info["action_valid"] is True
    assert len(obs) <= MAX_OBSERVATION_CHARS + 100
    assert obs.endswith(f"the limit is {MAX_OBSERVATION_CHARS}]") and "output truncated" in obs
    obs, *_, info = operation.step(call("get_range_values", start_position="A1", end_position="CV200"))
    assert info["action_valid"] is True and len(obs) <= MAX_OBSERVATION_CHARS + 100


NESTED = ["[" * 1000 + "]" * 1000, '{"answer": ' + "[" * 1000 + "]" * 1000 + "}",
          '{"answer": ' + '{"a": ' * 1500 + "1" + "}" * 1500 + "}", "{'a': " * 900 + "1" + "}" * 900]
NON_FINITE = ['{"answer": 1e999}', '{"answer": -1e999}', '{"answer": NaN}', '{"answer": Infinity}',
              '{"answer": -Infinity}', '{"answer": [1, 2, NaN]}', "{'answer': 1e999}"]


def test_parse_action_bounds_nesting_and_refuses_non_finite_numbers():
    from agentrm_gym.envs.tools.calls import MAX_INPUT_DEPTH

    for raw in NESTED:  # (Python's own parser refuses the deep dict literal as a syntax error)
        with pytest.raises(ToolError, match="nested too deeply|not valid JSON"):
            parse_action(f"finish with Action Input: {raw}")
    for raw in NON_FINITE:
        with pytest.raises(ToolError, match="non-finite"):
            parse_action(f"finish with Action Input: {raw}")
    ok = '{"a": ' * (MAX_INPUT_DEPTH - 1) + "1" + "}" * (MAX_INPUT_DEPTH - 1)
    assert parse_action(f"finish with Action Input: {ok}")[0] == "finish"
    with pytest.raises(ToolError, match="nested too deeply"):
        parse_action("finish with Action Input: " + '{"a": ' * (MAX_INPUT_DEPTH + 1) + "1" + "}" * (MAX_INPUT_DEPTH + 1))
    assert parse_action('finish with Action Input: {"answer": 1e300}')[1] == {"answer": 1e300}


def test_nested_and_non_finite_finish_is_an_in_env_error(query, operation):
    for env, task_id in ((query, "academia-test-0"), (operation, "sheet-test-0")):
        for raw in NESTED + NON_FINITE:
            env.reset(options={"task_id": task_id})
            obs, reward, term, _, info = env.step(f"finish with Action Input: {raw}")  # never raises
            assert obs.startswith("Error: ") and info["action_valid"] is False and not term and reward == 0.0
    assert check_args(FINISH_QUERY, {"answer": 1.5}) == {"answer": 1.5}
    with pytest.raises(ToolError):
        check_args(FINISH_QUERY, {"answer": float("nan")})


def test_snapshots_copy_the_tool_session(query, operation):
    operation.reset(options={"task_id": "sheet-test-0"})
    state = snapshot(operation)
    obs, *_, info = operation.step(call("open_sheet", name="Inventory"))
    assert info["action_valid"]
    restore(operation, state)
    obs, *_, info = operation.step(call("get_all_values"))
    assert info["action_valid"] is False and "no sheet is open" in obs

    query.reset(options={"task_id": "academia-test-0"})
    query.step(call("loadAuthorNet"))
    state = snapshot(query)
    query.step(call("loadPaperNet"))
    restore(query, state)
    assert query.tools.session == {"loaded": ["AuthorNet"]}
    restore(query, state)  # a restore does not hand the snapshot's own session to the env either
    query.step(call("loadPaperNet"))
    assert state.native["session"] == {"loaded": ["AuthorNet"]}
