"""Fault injection on every registered env id: Hypothesis-driven hostile actions never break the contract.

Each example resets the env (one env per id, reused for the module) and plays a short sequence mixing the
oracle's and admissible commands (so that deep states are reached) with hostile input: interpreter meta
commands, chained commands (``look. restart``), dumb-frotz backslash commands (``\\p``), control
characters, 100 KB strings, deeply nested and non-finite JSON, and non-``str`` actions (``None``, ints,
floats, bytes, lists, dicts). Every step must return a 5-tuple with a ``str`` observation of at most
:data:`MAX_OBSERVATION` characters, a ``bool`` ``action_valid``, a progress in [0, 1] that never goes down,
a finite reward equal to the progress increase, and must never raise; nothing may be written to the
current directory. A second test checks snapshot isolation: snapshot, play A, restore, play B gives what a
fresh env playing B from the same state gives.

The normal run plays a few hundred actions per id (fewer on ScienceWorld and ALFWorld, whose backends
are slow); the ``slow`` variants play thousands.
"""

from __future__ import annotations

import math
import os
import string

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agentrm_gym.core import restore, snapshot
from agentrm_gym.registry import TASKS, TaskSpec

from .conftest import require_task

#: The largest observation any step may return (characters).
MAX_OBSERVATION = 64 * 1024
#: Examples (action sequences of 1-8 steps) per id: the normal run, and the ``slow`` run.
EXAMPLES = {"ScienceWorld": 25, "ALFWorld": 60}
DEFAULT_EXAMPLES = 100
SLOW_EXAMPLES = {"ScienceWorld": 150, "ALFWorld": 200}
DEFAULT_SLOW_EXAMPLES = 600
#: Snapshot-isolation examples per id (each plays up to 3 + 6 + 6 steps twice).
SNAPSHOT_EXAMPLES = {"ScienceWorld": 5, "ALFWorld": 8}
DEFAULT_SNAPSHOT_EXAMPLES = 30


class Expert:
    """Stands for the oracle's next command (resolved against the env when played)."""

    def __repr__(self) -> str:
        return "EXPERT"


class Admissible:
    """Stands for the ``k``-th admissible command, modulo the list's length."""

    def __init__(self, k: int):
        self.k = k

    def __repr__(self) -> str:
        return f"ADMISSIBLE[{self.k}]"


def resolve(env: gym.Env, info: dict, action):
    """The concrete action of a sentinel (``Expert``/``Admissible``); other actions as they are."""
    if isinstance(action, Expert):
        return env.unwrapped.expert_action() or "look"
    if isinstance(action, Admissible):
        acts = info.get("admissible_actions") or []
        return acts[action.k % len(acts)] if acts else "look"
    return action


META = ["restart", "quit", "q", "save", "restore", "undo", "script", "unscript", "transcript", "noscript",
        "record", "replay", "again", "g", "oops", "verbose", "score", "tw-trace-actions", "tw-print", "yes", "y",
        "no", "n", "restart game", "save game"]
BENIGN = ["look", "inventory", "go north", "take key", "x me", "wait", "check valid actions", "move up",
          "search[shoes]", "click[back to search]"]
SEPARATORS = [". ", ".", ", ", ",", " then ", " THEN ", "; ", ";", "! ", "? ", " and "]
BACKSLASH = ["\\p", "\\x", "\\help", "\\", "\\q", "\\r", "\\s", "\\u", "\\n", "\\t", "\\a", "\\ ", "\\\\",
             "look \\x", "look. \\p", "\\p look"]
TOOLS = ["finish", "update_cell", "get_range_values", "open_sheet", "loadPaperNet", "get_projects",
         "get_all_values", "get_weather_today", "nonexistent_tool"]
JSON_ATOMS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e308", "0", "null", "true", '"x"',
              '"ZZZ999999"', "[]", "{}"]
HUGE = 100_000


def nested_json(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "dict":
        return '{"a": ' * depth + "1" + "}" * depth
    if kind == "answer":
        return '{"answer": ' + "[" * depth + "]" * depth + "}"
    return "{'a': " * depth + "1" + "}" * depth  # a Python literal (the tools' fallback parser)


def huge(chunk: str, prefix: str) -> str:
    return prefix + chunk * (HUGE // max(1, len(chunk)))


text_actions = st.one_of(
    st.sampled_from(META),
    st.builds(lambda a, s, b: a + s + b, st.sampled_from(BENIGN + META), st.sampled_from(SEPARATORS),
              st.sampled_from(META + BENIGN)),
    st.builds(lambda a, s, b, s2, c: a + s + b + s2 + c, st.sampled_from(BENIGN), st.sampled_from(SEPARATORS),
              st.sampled_from(BENIGN), st.sampled_from(SEPARATORS), st.sampled_from(META)),
    st.sampled_from(BACKSLASH),
    st.text(max_size=20).map(lambda t: "\\" + t),
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=40),  # ASCII with control characters
    st.text(max_size=60),  # any unicode (surrogates excluded by Hypothesis)
    st.builds(huge, st.sampled_from(["x", "a ", "[", "{", "\\", "é", "look ", "\x00", "🤖"]),
              st.sampled_from(["", "search[", "look ", "finish with Action Input: ", "\\"])),
    st.builds(lambda t, d, k: f"{t} with Action Input: {nested_json(d, k)}", st.sampled_from(TOOLS),
              st.integers(1, 9000), st.sampled_from(["list", "dict", "answer", "python"])),
    st.builds(lambda t, key, atom: f'{t} with Action Input: {{"{key}": {atom}}}', st.sampled_from(TOOLS),
              st.sampled_from(["answer", "position", "value", "name", "row"]), st.sampled_from(JSON_ATOMS)),
    st.sampled_from([
        'update_cell with Action Input: {"position": "ZZZ999999", "value": 1}',
        'update_cell with Action Input: {"position": "CV200", "value": 1}',
        'get_range_values with Action Input: {"start_position": "A1", "end_position": "ZZ20000"}',
        'get_range_values with Action Input: {"start_position": "A1", "end_position": "CV200"}',
        'open_sheet with Action Input: {"name": "Inventory"}',
        'get_A1_annotation with Action Input: {"row": 1000000000000, "col": 5}',
        'finish with Action Input: {"answer": 1e999}',
        'finish with Action Input: {"answer": NaN}',
    ]),
    st.text(alphabet=string.printable, max_size=80),
)
non_str_actions = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.text(max_size=8), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.tuples(st.integers(), st.text(max_size=5)),
)
byte_actions = st.one_of(st.binary(max_size=60), st.sampled_from([b"\\p", b"look. restart", b"\xff\xfe", b"look"]),
                         st.just(b"x" * HUGE))
actions = st.one_of(
    st.just(Expert()), st.just(Expert()), st.integers(0, 1000).map(Admissible),  # reach deep states
    st.integers(0, 1000).map(Admissible),
    text_actions, text_actions, non_str_actions, byte_actions,
)
sequences = st.lists(actions, min_size=1, max_size=8)
#: The task (index into the first test ids) and reset seed of an example.
episodes = st.integers(0, 999)


def fault_params() -> list:
    # every id is in the normal run (the slow backends get fewer examples), unlike conftest.spec_params
    return [pytest.param(spec, id=spec.name) for spec in TASKS.values()]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """An empty current directory for the module: no env may write files into it."""
    path = tmp_path_factory.mktemp("cwd")
    old = os.getcwd()
    os.chdir(path)
    yield path
    os.chdir(old)


@pytest.fixture(scope="module", params=fault_params())
def fault_env(request, workdir):
    spec: TaskSpec = request.param
    require_task(spec)
    # split="train" is cheap to construct everywhere (Jericho builds a test game only when it is played)
    env = gym.make(spec.env_id, split="train", disable_env_checker=True)
    ids = env.unwrapped.task_ids("test")
    task_ids = ids[:: max(1, len(ids) // 4)][:4]  # spread over the split: every tool set, several game kinds
    fresh = []  # a second env for the snapshot test, made on first use
    yield spec, env, task_ids, fresh
    env.close()
    for other in fresh:
        other.close()


def hypothesis_settings(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None, derandomize=True, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


def check_step(result, before: float, action) -> tuple[str, float, bool, bool, dict]:
    assert isinstance(result, tuple) and len(result) == 5, f"{action!r}: step returned {type(result).__name__}"
    obs, reward, term, trunc, info = result
    assert isinstance(obs, str), f"{action!r}: observation is {type(obs).__name__}"
    assert len(obs) <= MAX_OBSERVATION, f"{action!r}: {len(obs)}-character observation"
    assert isinstance(term, bool | np.bool_) and isinstance(trunc, bool | np.bool_)
    assert isinstance(info["action_valid"], bool), f"{action!r}: action_valid={info['action_valid']!r}"
    progress = info["progress"]
    assert 0.0 <= progress <= 1.0 and progress >= before, f"{action!r}: progress {before} -> {progress}"
    assert math.isfinite(float(reward)) and np.isclose(float(reward), progress - before), (action, reward)
    return obs, float(reward), bool(term), bool(trunc), info


#: Steps played per (test, id) in this session, so that a test cannot pass vacuously.
PLAYED: dict[str, int] = {}


def play(spec: TaskSpec, env: gym.Env, task_ids: list[str], workdir, seq: list, episode: int) -> int:
    """Reset to task ``episode % len(task_ids)`` with seed ``episode`` and play ``seq`` (checking each step)."""
    task_id = task_ids[episode % len(task_ids)]
    obs, info = env.reset(seed=episode, options={"task_id": task_id})
    assert isinstance(obs, str) and len(obs) <= MAX_OBSERVATION
    for action in seq:
        concrete = resolve(env, info, action)
        before = info["progress"]
        obs, reward, term, trunc, info = check_step(env.step(concrete), before, concrete)
        if concrete is None or isinstance(concrete, int | float | list | dict | tuple):
            assert info["action_valid"] is False and reward == 0.0, f"{concrete!r} was accepted"
        if spec.name == "Jericho" and isinstance(concrete, str | bytes):
            text = concrete.decode("utf-8", "replace") if isinstance(concrete, bytes) else concrete
            lowered = text.lower()
            words = [w for clause in lowered.replace(";", ".").replace(",", ".").replace(" then ", ".").split(".")
                     for w in clause.split()[:1]]
            if "\\" in text or any(w in {"restart", "quit", "save", "restore", "undo", "script", "record",
                                         "replay", "transcript"} for w in words):
                assert info["action_valid"] is False, f"{concrete!r} reached the story"
        if term or trunc:
            obs, info = env.reset(seed=episode, options={"task_id": task_id})
    assert os.listdir(workdir) == [], f"{spec.name} wrote {os.listdir(workdir)} into the current directory"
    return len(seq)


def fuzz(fault_env, workdir, n: int) -> None:
    spec, env, task_ids, _ = fault_env
    steps = 0

    @hypothesis_settings(n)
    @given(episode=episodes, seq=sequences)
    @example(episode=0, seq=[Expert(), "look. restart", "yes", Expert(), "look, quit", Expert(), "look then save"])
    @example(episode=1, seq=["\\p", "\\help", "look. \\x", b"\\x", "\x01look", Expert()])
    # (Hypothesis raises the recursion limit by 2,000 while it runs a test: nest deeper than that)
    @example(episode=2, seq=[Expert(), 'finish with Action Input: ' + "[" * 6000 + "]" * 6000,
                             'finish with Action Input: {"answer": 1e999}', 'finish with Action Input: {"answer": NaN}'])
    @example(episode=3, seq=[Expert(), Expert(), 'update_cell with Action Input: {"position": "ZZZ999999", "value": 1}',
                             'get_range_values with Action Input: {"start_position": "A1", "end_position": "ZZ20000"}',
                             "x" * HUGE, None, 42, b"\xff", ["look"]])
    def run(episode, seq):
        nonlocal steps
        steps += play(spec, env, task_ids, workdir, seq, episode)

    run()
    PLAYED[f"fuzz {spec.name}"] = steps
    assert steps >= 2 * n, f"only {steps} steps in {n} examples"


@pytest.mark.timeout(900, method="thread")  # a regression to a C-level hang must not wedge CI for good
def test_hostile_actions_keep_the_contract(fault_env, workdir):
    spec = fault_env[0]
    fuzz(fault_env, workdir, EXAMPLES.get(spec.name, DEFAULT_EXAMPLES))


@pytest.mark.slow
@pytest.mark.timeout(3600, method="thread")
def test_hostile_actions_keep_the_contract_thorough(fault_env, workdir):
    spec = fault_env[0]
    fuzz(fault_env, workdir, SLOW_EXAMPLES.get(spec.name, DEFAULT_SLOW_EXAMPLES))


def play_trace(env: gym.Env, info: dict, seq: list) -> tuple[list, list, dict]:
    """Play ``seq`` (sentinels resolved here); return the concrete actions, the trace and the last info."""
    played, trace = [], []
    for action in seq:
        concrete = resolve(env, info, action)
        played.append(concrete)
        obs, reward, term, trunc, info = env.step(concrete)
        trace.append((obs, reward, term, info["progress"], info["action_valid"], info["success"],
                      info["admissible_actions"]))
        if term or trunc:
            break
    return played, trace, info


# mostly commands that change the state (and what the admissible list shows), so that A can leak into B
admissible = st.integers(0, 1000).map(Admissible)
snapshot_actions = st.one_of(st.just(Expert()), st.just(Expert()), admissible, admissible, admissible, text_actions,
                             non_str_actions)


def snapshot_isolation(fault_env, n: int) -> None:
    spec, env, task_ids, fresh = fault_env
    if not fresh:
        fresh.append(gym.make(spec.env_id, split="train", disable_env_checker=True))
    other = fresh[0]
    compared = 0

    @hypothesis_settings(n)
    @given(prefix=st.lists(st.one_of(st.just(Expert()), admissible), max_size=3),
           a=st.lists(snapshot_actions, min_size=1, max_size=6), b=st.lists(snapshot_actions, min_size=1, max_size=6),
           episode=episodes)
    # every task of the list: snapshot at reset, A changes the state (the oracle's first calls), B replays
    @example(prefix=[], a=[Expert(), Expert()], b=[Expert(), Admissible(0), Admissible(1)], episode=0)
    @example(prefix=[], a=[Expert(), Expert()], b=[Expert(), Admissible(0), Admissible(1)], episode=1)
    @example(prefix=[], a=[Expert(), Expert()], b=[Expert(), Admissible(0), Admissible(1)], episode=2)
    @example(prefix=[], a=[Expert(), Expert()], b=[Expert(), Admissible(0), Admissible(1)], episode=3)
    def run(prefix, a, b, episode):
        nonlocal compared
        task_id = task_ids[episode % len(task_ids)]
        obs, info = env.reset(seed=episode, options={"task_id": task_id})
        played_prefix, _, info = play_trace(env, info, prefix)
        if env.unwrapped.success or env.unwrapped._terminated:
            return
        state = snapshot(env)
        saved_info = info
        play_trace(env, info, a)
        restore(env, state)
        played_b, trace_b, _ = play_trace(env, saved_info, b)
        # a fresh env, reset to the same task and seed, after the same prefix, playing the same B
        _, other_info = other.reset(seed=episode, options={"task_id": task_id})
        for action in played_prefix:
            *_, other_info = other.step(action)
        other_played, other_trace, _ = play_trace(other, other_info, played_b)
        assert other_played == played_b
        assert trace_b == other_trace, f"{spec.name} {task_id}: prefix {played_prefix!r}, A {a!r}, B {played_b!r}"
        compared += len(trace_b)

    run()
    PLAYED[f"snapshot {spec.name}"] = compared
    assert compared >= n, f"only {compared} steps compared in {n} examples"


def test_snapshot_restore_is_isolated_from_what_is_played_after(fault_env):
    spec = fault_env[0]
    snapshot_isolation(fault_env, SNAPSHOT_EXAMPLES.get(spec.name, DEFAULT_SNAPSHOT_EXAMPLES))


@pytest.mark.slow
def test_snapshot_restore_is_isolated_thorough(fault_env):
    spec = fault_env[0]
    snapshot_isolation(fault_env, 5 * SNAPSHOT_EXAMPLES.get(spec.name, DEFAULT_SNAPSHOT_EXAMPLES))
