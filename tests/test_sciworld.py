"""ScienceWorld env: splits, validity filter, oracle, snapshots, JVM lifetime and timeouts."""

from __future__ import annotations

import os
import time

import gymnasium as gym
import pytest

from agentrm_gym.core import MissingExtra, UnknownTask, restore, snapshot
from agentrm_gym.registry import get_spec, missing_requirements

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(missing_requirements(get_spec("ScienceWorld"))), reason="needs scienceworld"),
]


@pytest.fixture(scope="module")
def env():
    env = gym.make("agentrm/ScienceWorld-v0", split="test")
    yield env
    env.close()


def test_splits():
    from agentrm_gym.envs.sciworld import TASK_VARIATIONS, TEST_EPISODES, ScienceWorldEnv

    base = gym.make("agentrm/ScienceWorld-v0").unwrapped
    test, train = base.task_ids("test"), base.task_ids("train")
    assert len(test) == len(set(test)) == 90 and not set(test) & set(train)
    assert len({t for t, _ in TEST_EPISODES}) >= 15  # spread over the task types
    for task, var in TEST_EPISODES:
        n_train, first, last = TASK_VARIATIONS[task]
        assert first <= var <= last  # a test variation of the simulator
    assert ScienceWorldEnv.parse_task_id("chemistry-mix@24") == ("chemistry-mix", 24)
    for bad in ["boil", "boil@x", "nope@1", "boil@999"]:
        with pytest.raises(UnknownTask):
            ScienceWorldEnv.parse_task_id(bad)


def test_missing_java_is_a_clear_error(monkeypatch):
    from agentrm_gym.envs.sciworld import env as sciworld

    monkeypatch.setattr(sciworld.shutil, "which", lambda name: None)
    with pytest.raises(MissingExtra, match="openjdk"):
        sciworld.ScienceWorldEnv()


def test_reset_observation_goal_admissible(env):
    obs, info = env.reset(seed=0, options={"task_id": "find-animal@225"})
    assert obs.startswith("This room is called") or "location is called" in obs
    assert info["goal"].startswith("Your task is to")
    acts = info["admissible_actions"]
    assert "look around" in acts and "inventory" in acts and acts == sorted(acts)


def test_reloads_in_one_jvm_build_the_same_world(env):
    """Regression: identity-hash order used to change names, listings and gold paths between loads."""
    base = env.unwrapped
    assert base.simulator.deterministic
    first = env.reset(seed=0, options={"task_id": "find-animal@225"})
    gold = base.gold_path()
    env.reset(seed=0, options={"task_id": "chemistry-mix@24"})
    base._admissible_cache.clear()  # ask the JVM again rather than the per-state cache
    again = env.reset(seed=0, options={"task_id": "find-animal@225"})
    assert again == first
    sim = base.simulator
    sim.call(lambda b: b.load("find-animal", 225, base._simplification_str("find-animal"), generateGoldPath=True),
             "gold load")
    fresh = [a.lower().strip() for a in sim.call(lambda b: list(b.get_gold_action_sequence()), "gold")]
    assert [a.rstrip(".") for a in fresh] == gold


def test_oracle_and_deviation(env):
    base = env.unwrapped
    obs, info = env.reset(seed=0, options={"task_id": "chemistry-mix@24"})
    steps = 0
    term = trunc = False
    while not (term or trunc):
        action = base.expert_action()
        if action is None:
            break
        obs, _, term, trunc, info = env.step(action)
        assert info["action_valid"], (action, obs)
        steps += 1
    assert info["success"] and info["progress"] == 1.0 and steps <= 30
    env.reset(seed=0, options={"task_id": "chemistry-mix@24"})
    env.step("look around")  # not the gold path's first action
    assert base.expert_action() is None


def test_a_reload_does_not_report_the_last_episodes_score(env):
    """Regression: the JVM recomputes its score only on a command that acts; after a load it still held the last
    episode's, and an episode's first `task` reported it as its own progress."""
    env.reset(seed=0, options={"task_id": "find-animal@225"})
    _, _, _, _, info = env.step("look around")
    assert info["progress"] > 0  # the last episode ends with a score
    env.reset(seed=0, options={"task_id": "use-thermometer@405"})
    _, reward, _, _, info = env.step("task")
    assert reward == 0.0 and info["progress"] == 0.0  # use-thermometer@405 starts at 0 (find-animal@225 at 0.08)
    _, _, _, _, info = env.step("inventory")
    assert info["progress"] == 0.0


def test_garbage_never_reaches_the_jvm(env):
    base = env.unwrapped
    env.reset(seed=0, options={"task_id": "find-plant@225"})
    sent = []
    real_call = base.simulator.call

    def spy(fn, what, timeout=None):
        sent.append(what)
        return real_call(fn, what, timeout)

    base.simulator.call = spy
    try:
        for garbage in ["'; DROP TABLE items; --", "x" * 5000, "☃ take", "go\x00to", "reset task"]:
            obs, reward, _, _, info = env.step(garbage)
            assert obs == "No known action matches that input." and not info["action_valid"] and reward == 0
        assert not any(w in sent for w in ["reset task", "☃ take"])
        assert all(w.startswith("get_") for w in sent)  # only admissible-list queries went out
        obs, _, _, _, info = env.step("open door to nowhere")  # known words, but the parser rejects it
        assert not info["action_valid"]
        obs, _, _, _, info = env.step("Look Around.")
        assert info["action_valid"] and "called" in obs
    finally:
        base.simulator.call = real_call


def test_snapshot_restore_replays_exactly(env):
    obs, info = env.reset(seed=0, options={"task_id": "find-animal@226"})
    env.step("look around")
    state = snapshot(env)
    first = env.step("inventory")
    began = time.perf_counter()
    restore(env, state)
    elapsed = time.perf_counter() - began
    assert env.step("inventory") == first
    assert elapsed < 30


def test_close_stops_the_jvm_and_timeouts_raise():
    from agentrm_gym.envs.sciworld import SimulatorTimeout

    env = gym.make("agentrm/ScienceWorld-v0", split="test")
    env.reset(seed=0)
    sim = env.unwrapped.simulator
    pid = sim.pid
    assert pid is not None and os.path.exists(f"/proc/{pid}")
    with pytest.raises(SimulatorTimeout, match="sleepy"):
        sim.call(lambda b: time.sleep(3), "sleepy", timeout=0.2)
    assert not sim.running and not os.path.exists(f"/proc/{pid}")
    env.reset(seed=0)  # a new JVM
    pid = sim.pid
    env.close()
    assert not os.path.exists(f"/proc/{pid}")


def _java_children() -> set[int]:
    """Process ids of the java processes this test process started (and that still exist)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/comm") as fh:
                    comm = fh.read().strip()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and comm == "java" and fields[0] != "Z":
                pids.add(int(entry))
    return pids


def test_gold_path_generation_drops_ambiguity_answers_and_stops_its_jvm():
    """Regression: test-conductivity@677's gold path held a bare '0' (the env answers such prompts itself)."""
    from agentrm_gym.envs.sciworld import generate_gold_path, simplifications_for

    before = _java_children()
    gold = generate_gold_path("test-conductivity", 677, simplifications_for("test-conductivity"))
    assert _java_children() == before  # the dedicated JVM is gone
    assert "drop sodium chloride" in gold and not any(a.isdigit() for a in gold)


def test_oracle_gold_path_does_not_depend_on_earlier_loads(env):
    """Regression: after other loads of its task in one JVM, this variation's gold path grew from 29 to 33 steps."""
    base = env.unwrapped
    for task_id in ["test-conductivity-of-unknown-substances@455", "test-conductivity-of-unknown-substances@454"]:
        env.reset(seed=0, options={"task_id": task_id})
    env.reset(seed=0, options={"task_id": "test-conductivity-of-unknown-substances@455"})
    assert len(base.gold_path()) <= 30
    steps, term, trunc, info = 0, False, False, {}
    while not (term or trunc) and (action := base.expert_action()) is not None:
        _, _, term, trunc, info = env.step(action)
        assert info["action_valid"], action
        steps += 1
    assert info["success"] and steps <= 30


def _branch_observations(simulators: int) -> tuple[list[str], int, int]:
    """Three branches of find-animal@226 advanced in lockstep (as Best-of-N plays its candidates): the
    observations, how many times the env loaded a task, and the most JVMs it held at once."""
    env = gym.make("agentrm/ScienceWorld-v0", split="test", simulators=simulators)
    base = env.unwrapped
    loads = 0
    load = base._load

    def counting_load(*args, **kwargs):
        nonlocal loads
        loads += 1
        return load(*args, **kwargs)

    base._load = counting_load
    _, info = env.reset(seed=0, options={"task_id": "find-animal@226"})
    looks = [a for a in info["admissible_actions"] if a.startswith("look at")][:3]
    assert len(looks) == 3
    root = snapshot(env)
    states, seen, held = [], [], 1
    for action in looks:
        restore(env, root)
        seen.append(env.step(action)[0])
        states.append(snapshot(env))
    for _ in range(3):
        for i, state in enumerate(states):
            restore(env, state)
            seen.append(env.step("wait1")[0])
            states[i] = snapshot(env)
            held = max(held, 1 + sum(slot["sim"].running for slot in base._parked))
    pids = {sim.pid for sim in [base.simulator, *(slot["sim"] for slot in base._parked)]} - {None}
    assert len(pids) == held
    env.close()
    assert not pids & _java_children()  # close() stops every JVM of the env
    return seen, loads, held


def test_restores_continue_the_jvm_that_holds_a_prefix():
    pooled, pooled_loads, pooled_held = _branch_observations(simulators=3)
    single, single_loads, single_held = _branch_observations(simulators=1)
    assert pooled == single  # the same world whichever JVM plays a branch
    assert (pooled_loads, pooled_held) == (3, 3)  # one load per JVM, then one command per restore
    assert single_held == 1 and single_loads >= 1 + 2 + 9  # one JVM reloads at (nearly) every switch


def test_admissible_in_info_false_lists_only_on_demand(env):
    """``admissible_in_info=False`` leaves the listing out of info; the episode itself is the same."""
    lazy = gym.make("agentrm/ScienceWorld-v0", split="test", admissible_in_info=False, simulators=1)
    try:
        base = lazy.unwrapped
        obs_a, info_a = env.reset(seed=0, options={"task_id": "find-animal@225"})
        obs_b, info_b = lazy.reset(seed=0, options={"task_id": "find-animal@225"})
        assert obs_a == obs_b and info_b["admissible_actions"] is None
        listed: list[str] = []
        real_query = base.simulator.query

        def spy(fn, what, timeout=None):
            listed.append(what)
            return real_query(fn, what, timeout)

        base.simulator.query = spy
        for action in ["look around", "go to hallway", "open door to nowhere", "wait1"]:
            a, b = env.step(action), lazy.step(action)
            assert a[:4] == b[:4] and a[4]["progress"] == b[4]["progress"]
            assert a[4]["action_valid"] == b[4]["action_valid"] and b[4]["admissible_actions"] is None
        assert listed == []  # plausible commands are sent without listing valid actions
        lazy.step("☃ garbage")  # not plausible: the validity check lists them
        assert listed == ["get_valid_action_object_combinations"]
        assert base.admissible_actions() == env.unwrapped.admissible_actions()
    finally:
        lazy.close()
