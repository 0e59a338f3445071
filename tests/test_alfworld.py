"""ALFWorld: generated scenes on alfworld's PDDL domain/grammar, the engine driver, progress, oracle, snapshots."""

from __future__ import annotations

import json
import pickle
import random
import time

import pytest

from agentrm_gym.core import MissingExtra, restore, snapshot
from agentrm_gym.registry import TASKS

from .conftest import require_task

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env():
    require_task(TASKS["ALFWorld"])
    import gymnasium as gym

    e = gym.make("agentrm/ALFWorld-v0", split="test")
    yield e
    e.close()


def run_oracle(env, task_id, detour=0, seed=0):
    obs, info = env.reset(seed=seed, options={"task_id": task_id})
    rng = random.Random(seed)
    for _ in range(detour):
        obs, _, term, trunc, info = env.step(rng.choice(info["admissible_actions"]))
    trace = [info["progress"]]
    term = trunc = False
    while not (term or trunc):
        action = env.unwrapped.expert_action()
        if action is None:
            break
        obs, _, term, trunc, info = env.step(action)
        trace.append(info["progress"])
    return info, trace


def test_missing_extra_names_install_command(monkeypatch):
    import agentrm_gym.registry as registry
    from agentrm_gym.envs.alfworld.env import ALFWorldEnv

    monkeypatch.setattr(registry, "missing_requirements", lambda spec: ["alfworld"])
    with pytest.raises(MissingExtra, match=r"pip install 'agentrm-gym\[alfworld\]'"):
        ALFWorldEnv()


def test_splits_use_disjoint_floor_plans_and_alfworld_counts():
    require_task(TASKS["ALFWorld"])
    from collections import Counter

    from agentrm_gym.envs.alfworld.scenes import TEST_FLOOR_PLANS, TEST_TYPE_COUNTS, scene_for

    test = [scene_for("test", i) for i in range(134)]
    assert {s.floor_plan for s in test} <= set(TEST_FLOOR_PLANS)
    assert Counter(s.task_type for s in test) == Counter(TEST_TYPE_COUNTS)
    train = [scene_for("train", i) for i in range(60)]
    assert not {s.floor_plan for s in train} & set(TEST_FLOOR_PLANS)
    assert len({s.task_type for s in train}) == 6
    assert scene_for("test", 5) == scene_for("test", 5)  # deterministic per id


def test_intro_reads_like_alfworld(env):
    obs, info = env.reset(options={"task_id": "test-002"})
    assert obs.startswith("You are in the middle of a room. Looking quickly around you, you see a ")
    assert "UNKNOWN GOAL" not in obs and "Welcome to TextWorld" not in obs
    assert obs.endswith("\n\nYour task is to: " + info["goal"])
    assert info["goal"].endswith(".") and info["task_type"] == "pick_clean_then_place_in_recep"
    assert "clean" in info["goal"]
    assert "look" in info["admissible_actions"] and any(a.startswith("go to ") for a in info["admissible_actions"])


def test_driver_matches_textworld_pddl_env(env):
    """Admissible commands and feedback equal those of stock PddlEnv + AlfredDemangler."""
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
    from textworld.envs.pddl import PddlEnv

    obs, info = env.reset(options={"task_id": "test-001"})
    path = env.unwrapped._engine.game_path
    ref = AlfredDemangler(PddlEnv(textworld.EnvInfos(admissible_commands=True)))
    ref.load(str(path))
    state = ref.reset()
    assert state["admissible_commands"] == info["admissible_actions"]
    assert state.feedback.strip() == obs  # the game file's grammar carries the task text
    rng = random.Random(3)
    for _ in range(8):
        action = rng.choice(info["admissible_actions"])
        obs, _, term, _, info = env.step(action)
        state, _, _ = ref.step(action)
        assert obs == state.feedback
        if term:
            break
        assert info["admissible_actions"] == state["admissible_commands"]


def test_invalid_commands_never_reach_engine(env, monkeypatch):
    obs, info = env.reset(options={"task_id": "test-000"})
    engine = env.unwrapped._engine
    real_step = engine.step
    calls = []
    monkeypatch.setattr(engine, "step", lambda c: calls.append(c) or real_step(c))
    for bad in ["go to the moon", "take", "", "x" * 5000, "go to cabinet 99"]:
        obs, reward, _, _, info = env.step(bad)
        assert obs == "Nothing happens." and info["action_valid"] is False and reward == 0.0
    assert calls == []
    target = info["admissible_actions"][0]
    obs, _, _, _, info = env.step("  " + target.upper().replace(" ", "   ") + " ")
    assert info["action_valid"] is True and calls == [target]


def test_native_snapshot_restores_across_tasks(env):
    obs, info = env.reset(seed=1, options={"task_id": "test-004"})
    for _ in range(3):
        obs, *_, info = env.step(env.unwrapped.expert_action())
    state = pickle.loads(pickle.dumps(snapshot(env)))
    assert state.native is not None
    first = []
    for _ in range(4):
        action = env.unwrapped.expert_action() or "look"
        first.append((action, env.step(action)))
    env.reset(options={"task_id": "test-010"})  # another game in between
    restore(env, state)
    assert env.unwrapped.last_observation == obs and env.unwrapped.progress == info["progress"]
    second = [(a, env.step(a)) for a, _ in first]
    assert first == second
    replay = pickle.loads(pickle.dumps(state))
    replay.native = None
    t = time.perf_counter()
    restore(env, replay)
    replay_cost = time.perf_counter() - t
    assert [(a, env.step(a)) for a, _ in first] == first
    t = time.perf_counter()
    restore(env, state)
    native_cost = time.perf_counter() - t
    assert [(a, env.step(a)) for a, _ in first] == first
    assert native_cost < replay_cost


def test_oracle_progress_and_recovery(env):
    info, trace = run_oracle(env, "test-005")  # pick_two_obj_and_place: 5 subgoals + goal
    assert info["success"] and trace[-1] == 1.0
    assert all(b >= a for a, b in zip(trace, trace[1:], strict=False))
    assert len({p for p in trace if p < 1.0}) >= 4  # progress moves through several subgoals
    info, trace = run_oracle(env, "test-003", detour=6, seed=4)  # heat task after random moves
    assert info["success"] and env.unwrapped.steps <= 30


def test_data_path_plays_official_layout(env, tmp_path):
    """A game laid out like json_2.1.1 (no generator metadata) is found, named by its folder and won."""
    env.reset(options={"task_id": "test-000"})
    src = env.unwrapped._engine.game_path
    data = json.loads(src.read_text())
    scene = data.pop("agentrm_scene")
    folder = (f"{scene['task_type']}-{scene['obj']}-None-{scene['recep']}-{scene['floor_plan']}"
              f"/trial_T20190001_000000_000000")
    game = tmp_path / "json_2.1.1" / "valid_unseen" / folder / "game.tw-pddl"
    game.parent.mkdir(parents=True)
    game.write_text(json.dumps(data))
    import gymnasium as gym

    official = gym.make("agentrm/ALFWorld-v0", split="test", data_path=tmp_path / "json_2.1.1")
    try:
        ids = official.unwrapped.task_ids("test")
        assert ids == [f"valid_unseen/{folder}"]
        info, _ = run_oracle(official, ids[0])
        assert info["success"] and info["goal"] == data["goal"]
    finally:
        official.close()


def test_classic_put_in_on_is_read_as_move(env):
    """ETO/AgentBoard prompts write ``put X in/on Y``; the 0.4.2 engine's command is ``move X to Y``."""
    for task_id in env.unwrapped.task_ids("test")[:20]:
        obs, info = env.reset(options={"task_id": task_id})
        while True:
            moves = [a for a in info["admissible_actions"] if a.startswith("move ")]
            if moves:
                break
            action = env.unwrapped.expert_action()
            if action is None:
                break
            obs, _, term, trunc, info = env.step(action)
            if term or trunc:
                break
        if moves:
            obj, recep = moves[0].removeprefix("move ").split(" to ")
            obs, _, _, _, info = env.step(f"put {obj} in/on {recep}")
            assert info["action_valid"] is True
            return
    pytest.fail("no episode reached a state with a move command")
