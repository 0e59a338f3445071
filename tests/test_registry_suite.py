"""The registry-wide TextEnv contract suite: every registered id is tested the day it is registered.

The checks are the public contract checker's (:mod:`agentrm_gym.checker`, ``agentrm_gym.check_task``), one
test each, so that what the suite demands of its own tasks is what a task author runs on theirs.
"""

from __future__ import annotations

import pickle

import gymnasium as gym
import pytest

from agentrm_gym import checker
from agentrm_gym.registry import TaskSpec

from .conftest import require_task, spec_params


@pytest.fixture(params=spec_params())
def spec(request) -> TaskSpec:
    require_task(request.param)
    return request.param


def test_check_env(spec):
    checker.check_gym_api(spec)


def test_info_keys_and_splits(spec):
    checker.check_info_and_splits(spec)


def test_seeded_determinism(spec):
    checker.check_seeded_determinism(spec)


def test_snapshot_restore(spec):
    checker.check_snapshot_restore(spec)


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickle_and_deepcopy_copy_the_env(spec, how):
    checker.check_copies(spec, how)


def test_copy_of_an_env_before_reset():
    import copy

    env = gym.make("agentrm/Maze-v0", split="test", disable_env_checker=True)
    clone = copy.deepcopy(env)
    assert clone.unwrapped.split == "test" and clone.unwrapped.task_id is None
    obs, info = clone.reset(seed=0)
    assert obs == env.reset(seed=0)[0]


def test_garbage_actions_never_raise(spec):
    checker.check_garbage_actions(spec)


def test_progress_monotone_rewards_sum(spec):
    checker.check_progress(spec)


@pytest.mark.slow
def test_oracle_solves_test_split(spec):
    checker.check_oracle(spec)


def test_a_broken_promise_is_named():
    """The checker can fail: an env whose rewards do not sum to its progress is caught and named."""
    from agentrm_gym.envs.maze import MazeEnv

    class GenerousMaze(MazeEnv):
        def step(self, action):
            obs, reward, term, trunc, info = super().step(action)
            return obs, reward + 0.5, term, trunc, info

    spec = TaskSpec("GenerousMaze", f"{__name__}:GenerousMaze", "text game", False, 25, 50)
    gym.register(spec.env_id, entry_point=lambda **kw: GenerousMaze(**kw), max_episode_steps=50)
    try:
        with pytest.raises(checker.ContractError, match="GenerousMaze.*rewards sum to"):
            checker.check_progress(spec)
    finally:
        gym.registry.pop(spec.env_id)


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
