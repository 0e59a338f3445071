"""Planners on Maze with a noisy scripted policy and the oracle-distance scorer."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import agentrm_gym  # noqa: F401
from agentrm_gym.agents.planners import MCTS, BeamSearch, BestOfN, Greedy, make_planner
from agentrm_gym.agents.policy import Generation, LLMPolicy, NoisyOraclePolicy, OraclePolicy
from agentrm_gym.agents.scorers import ProgressScorer, as_scorer
from agentrm_gym.envs.maze import MazeDistanceScorer
from agentrm_gym.trajectory import Trajectory

STEPS = 20


@pytest.fixture(scope="module")
def env():
    e = gym.make("agentrm/Maze-v0", split="test", max_episode_steps=STEPS)
    yield e
    e.close()


def _rates(env, method: str, p_noise: float = 0.7) -> tuple[float, float]:
    progress, success = [], []
    for i, task_id in enumerate(env.unwrapped.task_ids("test")):
        planner = make_planner(method, NoisyOraclePolicy(p_noise), MazeDistanceScorer())
        traj = planner.run(env, task_id, seed=i).trajectory
        progress.append(traj.progress)
        success.append(traj.success)
    return float(np.mean(progress)), float(np.mean(success))


def test_best_of_n_and_beam_beat_greedy(env):
    greedy, _ = _rates(env, "greedy")
    bon, _ = _rates(env, "bon:5")
    beam, _ = _rates(env, "beam:3x3")
    assert bon > greedy + 0.1, (greedy, bon)
    assert beam > greedy + 0.1, (greedy, beam)


def test_mcts_beats_greedy_and_tree_backup(env, tmp_path):
    greedy, _ = _rates(env, "greedy")
    mcts, _ = _rates(env, "mcts:10")
    assert mcts > greedy + 0.1
    res = MCTS(NoisyOraclePolicy(0.7), MazeDistanceScorer(), iterations=12, k=3).run(env, "double_t-1-1", seed=3)
    nodes = res.tree.nodes
    for n in nodes:
        if n.children:
            kids = [nodes[i] for i in n.children]
            assert n.N == sum(k.N for k in kids)
            assert n.V == pytest.approx(sum(k.N * k.V for k in kids) / n.N)
            assert len({k.action for k in kids}) == len(kids)  # duplicates merged
    res.tree.to_jsonl(tmp_path / "tree.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "tree.jsonl").read_text().splitlines()]
    assert len(lines) == len(nodes) and {"state", "N", "V", "children"} <= set(lines[0])
    assert lines[0]["N"] == nodes[0].N and lines[0]["parent"] is None
    pairs = res.tree.value_pairs(min_visits=2)
    assert pairs and all(0.0 <= v <= 1.0 for _, v in pairs)


@pytest.mark.parametrize("method", ["greedy", "bon:4", "beam:2x3", "mcts:5"])
def test_deterministic_and_replayable(env, method):
    a = make_planner(method, NoisyOraclePolicy(0.6), MazeDistanceScorer()).run(env, "double_t-1-11", seed=5)
    b = make_planner(method, NoisyOraclePolicy(0.6), MazeDistanceScorer()).run(env, "double_t-1-11", seed=5)
    assert [s.action for s in a.trajectory.steps] == [s.action for s in b.trajectory.steps]
    assert a.cost.env_steps == b.cost.env_steps > 0
    # the chosen trajectory is real: replaying its actions in a fresh env gives the same progress
    fresh = gym.make("agentrm/Maze-v0", split="test", max_episode_steps=STEPS)
    fresh.reset(seed=5, options={"task_id": "double_t-1-11"})
    info = {}
    for s in a.trajectory.steps:
        _, _, _, _, info = fresh.step(s.action)
    assert info["progress"] == pytest.approx(a.trajectory.progress)
    assert len(a.trajectory.steps) <= STEPS
    assert a.trajectory.meta["cost"]["env_steps"] == a.cost.env_steps
    assert Trajectory.from_dict(json.loads(json.dumps(a.trajectory.to_dict()))).steps == a.trajectory.steps


class CountingLLM(LLMPolicy):
    """A scripted LLM backend that records its batch sizes (no env access, like a real model)."""

    def __init__(self):
        super().__init__(seed=0)
        self.batches: list[tuple[int, int]] = []

    def generate(self, states, n, temperature):
        self.batches.append((len(states), n))
        moves = ["up", "down", "left", "right"]
        return [[Generation(f"Thought: try.\nAction: move {moves[int(self.rng.integers(4))]}", -1.0, 5)
                 for _ in range(n)] for _ in states]


def test_policy_calls_are_batched(env):
    pol = CountingLLM()
    res = BestOfN(pol, MazeDistanceScorer(), n=4, max_steps=3).run(env, "double_t-5-4", seed=0)
    assert pol.batches[0] == (4, 1) and res.cost.policy_calls == len(pol.batches) == 3
    assert res.cost.generated_tokens == 5 * res.cost.proposals and res.cost.scorer_calls == 1
    pol = CountingLLM()
    res = BeamSearch(pol, MazeDistanceScorer(), beams=2, expansions=3, max_steps=3).run(env, "double_t-5-4", seed=0)
    assert pol.batches[0] == (1, 6)  # first step: W1 * W2 samples from the root
    assert all(n == 3 and s <= 2 for s, n in pol.batches[1:])
    assert res.cost.scorer_calls == res.cost.policy_calls == len(pol.batches)
    assert len(res.candidates) == 2


def test_scorer_forms_and_oracle(env):
    calls = []

    class Obj:
        def score(self, states):
            calls.append(len(states))
            return MazeDistanceScorer()(states)

    r1 = BestOfN(NoisyOraclePolicy(0.5), Obj(), n=3).run(env, "double_t-1-5", seed=1)
    r2 = BestOfN(NoisyOraclePolicy(0.5), lambda s: MazeDistanceScorer()(s), n=3).run(env, "double_t-1-5", seed=1)
    assert calls == [3] and r1.trajectory.steps == r2.trajectory.steps
    with pytest.raises(ValueError, match="3 values for 2"):
        as_scorer(lambda s: [0.0, 1.0, 2.0])([r1.trajectory.state()] * 2)
    res = Greedy(OraclePolicy()).run(env, "double_t-1-1", seed=0)
    assert res.trajectory.success and res.trajectory.progress == 1.0
    assert ProgressScorer()([res.trajectory.state()])[0] == 1.0
    assert MazeDistanceScorer()([res.trajectory.state()])[0] == 1.0
    assert MazeDistanceScorer()([res.trajectory.state(upto=0)])[0] == 0.0


def test_make_planner_rejects_bad_methods():
    for bad in ("bon:x", "beam:axb", "foo"):
        with pytest.raises(ValueError):
            make_planner(bad, OraclePolicy())
    assert make_planner("beam:4x2", OraclePolicy()).describe() == "beam:4x2"
