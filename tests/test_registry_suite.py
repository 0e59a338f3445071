"""The registry-wide TextEnv contract suite: every registered id is tested the day it is registered."""

from __future__ import annotations

import pickle
import random
import string

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from agentrm_gym.core import CHECK_VALID_ACTIONS, restore, snapshot
from agentrm_gym.registry import TaskSpec

from .conftest import require_task, spec_params

INFO_KEYS = {"task", "task_id", "goal", "progress", "success", "admissible_actions", "action_valid"}


@pytest.fixture(params=spec_params())
def spec(request) -> TaskSpec:
    require_task(request.param)
    return request.param


def make(spec: TaskSpec, **kwargs) -> gym.Env:
    return gym.make(spec.env_id, **kwargs)


def policy_action(env: gym.Env, rng: random.Random, info: dict) -> str:
    """A mix of oracle and random admissible actions, so rollouts visit varied states."""
    acts = info.get("admissible_actions")
    expert = env.unwrapped.expert_action()
    if expert is not None and (rng.random() < 0.5 or not acts):
        return expert
    if acts:
        return rng.choice(acts)
    return "look"


def rollout(env: gym.Env, task_id: str, seed: int, k: int) -> list[tuple]:
    obs, info = env.reset(seed=seed, options={"task_id": task_id})
    rng = random.Random(seed)
    trace = [(obs, info["progress"])]
    for _ in range(k):
        action = policy_action(env, rng, info)
        obs, reward, term, trunc, info = env.step(action)
        trace.append((action, obs, reward, term, info["progress"], info["action_valid"]))
        if term or trunc:
            break
    return trace


def test_check_env(spec):
    env = make(spec, split="test")
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def test_info_keys_and_splits(spec):
    env = make(spec, split="test")
    try:
        base = env.unwrapped
        test_ids = base.task_ids("test")
        assert len(test_ids) == spec.test_size
        assert len(set(test_ids)) == len(test_ids)
        train_ids = base.task_ids("train")
        assert train_ids and not set(train_ids) & set(test_ids)
        obs, info = env.reset(seed=0)
        assert isinstance(obs, str) and obs
        assert INFO_KEYS <= set(info)
        assert info["task"] == spec.name and info["task_id"] in test_ids
        assert isinstance(info["goal"], str) and info["goal"]
        assert 0.0 <= info["progress"] <= 1.0
        obs, _, _, _, info = env.step(CHECK_VALID_ACTIONS)
        assert info["action_valid"] is True
        if info["admissible_actions"] is not None:
            assert all(a in obs for a in info["admissible_actions"][:5])
        assert INFO_KEYS <= set(info)
    finally:
        env.close()


def test_seeded_determinism(spec):
    a, b = make(spec, split="test"), make(spec, split="test")
    try:
        task_id = a.unwrapped.task_ids("test")[1]
        assert rollout(a, task_id, 7, 8) == rollout(b, task_id, 7, 8)
        oa, ia = a.reset(seed=3)
        ob, ib = b.reset(seed=3)
        assert oa == ob and ia["task_id"] == ib["task_id"]
    finally:
        a.close()
        b.close()


def two_steps_into_the_first_test_task(env) -> tuple[random.Random, dict]:
    """Reset to the first test task (seed 1) and take two policy actions; the rng and the last info."""
    task_id = env.unwrapped.task_ids("test")[0]
    _, info = env.reset(seed=1, options={"task_id": task_id})
    rng = random.Random(1)
    for _ in range(2):
        *_, info = env.step(policy_action(env, rng, info))
    return rng, info


def test_snapshot_restore(spec):
    env = make(spec, split="test")
    try:
        rng, info = two_steps_into_the_first_test_task(env)
        state = pickle.loads(pickle.dumps(snapshot(env)))
        actions = []
        first = []
        for _ in range(4):
            a = policy_action(env, rng, info)
            actions.append(a)
            obs, r, term, trunc, info = env.step(a)
            first.append((obs, r, term, trunc, info))
            if term or trunc:
                break
        restore(env, state)
        second = []
        for a in actions:
            obs, r, term, trunc, info = env.step(a)
            second.append((obs, r, term, trunc, info))
        assert first == second
    finally:
        env.close()


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickle_and_deepcopy_copy_the_env(spec, how):
    import copy

    env = make(spec, split="test", disable_env_checker=True)
    try:
        _, info = two_steps_into_the_first_test_task(env)
        clone = pickle.loads(pickle.dumps(env)) if how == "pickle" else copy.deepcopy(env)
        try:
            assert clone.unwrapped is not env.unwrapped and type(clone.unwrapped) is type(env.unwrapped)
            assert clone.unwrapped.spec == env.unwrapped.spec
            assert clone.unwrapped.actions == env.unwrapped.actions
            assert clone.unwrapped.last_observation == env.unwrapped.last_observation
            actions = [policy_action(env, random.Random(k), info) for k in range(3)]
            first = [env.step(a) for a in actions]
            second = [clone.step(a) for a in actions]  # the copy is where the original was, and its own env
            assert [(o, r, t, i["progress"]) for o, r, t, _, i in first] == \
                [(o, r, t, i["progress"]) for o, r, t, _, i in second]
        finally:
            clone.close()
    finally:
        env.close()


def test_copy_of_an_env_before_reset():
    import copy

    env = gym.make("agentrm/Maze-v0", split="test", disable_env_checker=True)
    clone = copy.deepcopy(env)
    assert clone.unwrapped.split == "test" and clone.unwrapped.task_id is None
    obs, info = clone.reset(seed=0)
    assert obs == env.reset(seed=0)[0]


def garbage_actions(n: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    out: list = ["", " ", "\n", "x" * 20000, "🤖 take ☃ from ∞", "click[]", "search[", "move", "[SEP]",
                 "'; DROP TABLE items; --", None, 42, b"\xff\xfe"]
    while len(out) < n:
        length = rng.randint(1, 60)
        out.append("".join(rng.choice(string.printable) for _ in range(length)) + "\x00qz#")
    return out


def test_garbage_actions_never_raise(spec):
    env = make(spec, split="test", disable_env_checker=True)
    try:
        obs, info = env.reset(seed=2)
        before = info["progress"]
        for action in garbage_actions(200):
            obs, reward, term, trunc, info = env.step(action)
            assert isinstance(obs, str)
            assert info["action_valid"] is False, f"{action!r} was accepted"
            assert reward == 0.0 and info["progress"] == before
            if trunc:
                obs, info = env.reset(seed=2)
    finally:
        env.close()


def test_progress_monotone_rewards_sum(spec):
    env = make(spec, split="test")
    try:
        for seed, task_id in enumerate(env.unwrapped.task_ids("test")[:3]):
            trace = rollout(env, task_id, seed, 400)
            progress = [t[4] for t in trace[1:]]
            start = trace[0][1]
            assert all(0.0 <= p <= 1.0 for p in progress)
            assert all(b >= a for a, b in zip([start, *progress], progress, strict=False))
            total = sum(t[2] for t in trace[1:])
            assert np.isclose(total, (progress[-1] if progress else start) - start)
    finally:
        env.close()


def run_oracle(env: gym.Env, task_id: str) -> tuple[bool, float]:
    obs, info = env.reset(seed=0, options={"task_id": task_id})
    term = trunc = False
    while not (term or trunc):
        action = env.unwrapped.expert_action()
        if action is None:
            break
        obs, _, term, trunc, info = env.step(action)
    return bool(info["success"]), float(info["progress"])


@pytest.mark.slow
def test_oracle_solves_test_split(spec):
    env = make(spec, split="test")
    try:
        results = [run_oracle(env, t) for t in env.unwrapped.task_ids("test")]
    finally:
        env.close()
    success = np.mean([s for s, _ in results])
    assert success >= spec.oracle_min_success, f"{spec.name} oracle success {success:.3f}"
    assert all(p == 1.0 for s, p in results if s)


def test_copy_with_unpicklable_constructor_arguments_names_snapshot():
    from agentrm_gym.envs.maze import MazeEnv

    class LambdaMaze(MazeEnv):
        def __init__(self, hook=None, **kwargs):
            super().__init__(**kwargs)
            self.hook = hook

    env = LambdaMaze(hook=lambda: None, split="test")
    env.reset(seed=0)
    with pytest.raises(TypeError, match=r"agentrm_gym\.snapshot\(env\)"):
        pickle.dumps(env)
