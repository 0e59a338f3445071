"""The multi-turn policy-gradient trainer of the LLM policy (issue 22): reward specs, credit, learning, resume,
the hacking alarm and ``agentrm rl --preset smoke``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agentrm_gym.core import StepOutcome, TextEnv
from agentrm_gym.rl.alarm import HackingAlarm, spearman
from agentrm_gym.rl.rewards import (
    REWARD_SPECS,
    RunningMoments,
    group_advantages,
    make_reward_spec,
    returns_to_go,
    turn_rewards,
)
from agentrm_gym.trajectory import AgentState, Step

pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- reward specs
def _hand_made() -> tuple[list[float], list[AgentState]]:
    """Three turns: progress 0.1 -> 0.3 -> 0.3 -> 0.6; the third action repeats the first."""
    progress = [0.1, 0.3, 0.3, 0.6]
    actions = ["go north", "open door", "go north"]
    state = AgentState("Maze", "reach the goal", "start")
    states = [state]
    for a, p in zip(actions, progress[1:], strict=True):
        state = state.extend(Step(action=a, observation="ok", progress=p))
        states.append(state)
    return progress, states


def test_each_spec_gives_its_per_turn_rewards():
    progress, states = _hand_made()
    v = [0.0, 0.5, 0.2, 0.9]  # a hand-made RM potential
    np.testing.assert_allclose(turn_rewards("success", progress, True), [0, 0, 1])
    np.testing.assert_allclose(turn_rewards("success", progress, False), [0, 0, 0])
    np.testing.assert_allclose(turn_rewards("outcome", progress, False), [0, 0, 0.6])
    np.testing.assert_allclose(turn_rewards("progress", progress, False), [0.2, 0.0, 0.3])
    np.testing.assert_allclose(turn_rewards("rm", progress, False, v), [0.5, -0.3, 0.7 + 0.6])
    np.testing.assert_allclose(turn_rewards("rm-only", progress, False, v), [0.5, -0.3, 0.7])
    np.testing.assert_allclose(turn_rewards("rm", progress, False, v, gamma=0.5, coef=2.0),
                               [2 * (0.25 - 0), 2 * (0.1 - 0.5), 2 * (0.45 - 0.2) + 0.6])
    # the shaped return telescopes: outcome + V(s_T) - V(s_0)
    assert turn_rewards("rm", progress, False, v).sum() == pytest.approx(0.6 + 0.9 - 0.0)
    heuristic = make_reward_spec("heuristic", heuristic_scale=0.05)
    values = heuristic.values(states)
    np.testing.assert_allclose(values, [0, 0, 0, -0.05])  # the FewerRepeats potential
    np.testing.assert_allclose(heuristic.rewards(progress, False, values), [0, 0, 0.6 - 0.05])
    rm = make_reward_spec("rm", rm=lambda s: float(len(s.steps)))  # any RM spec: a function state -> float
    np.testing.assert_allclose(rm.rewards(progress, True, rm.values(states)), [1, 1, 1 + 0.6])
    assert set(REWARD_SPECS) == {"success", "outcome", "rm", "rm-only", "progress", "heuristic"}
    with pytest.raises(ValueError, match="needs an RM"):
        make_reward_spec("rm")
    with pytest.raises(ValueError, match="unknown reward spec"):
        turn_rewards("dense", progress, False)


def test_advantages_use_the_episode_baseline_not_a_per_turn_index_one():
    # two rollouts of one task id, outcome reward: a long failure and a short success
    long = returns_to_go([0.0, 0.0, 0.0, 0.2])
    short = returns_to_go([0.0, 1.0])
    adv = group_advantages([long, short], ["t0", "t0"])
    base = (0.2 + 1.0) / 2
    np.testing.assert_allclose(adv[0], [0.2 - base] * 4)
    np.testing.assert_allclose(adv[1], [1.0 - base] * 2)
    # per-turn-index normalisation would centre each turn index: turn 0's advantages would sum to 0 and
    # turns 2-3 (only the long episode has them) would get 0; here they keep the episode's credit
    per_index_turn3 = adv[0][3] - np.mean([a[3] for a in adv if len(a) > 3])  # what per-index centring gives
    assert per_index_turn3 == 0.0 and adv[0][3] == pytest.approx(0.2 - base) != 0.0
    # a dense return-to-go shrinks along the episode: each turn keeps its own G_t minus the same baseline
    dense = group_advantages([returns_to_go([0.2, 0.0, 0.3]), returns_to_go([0.1])], ["g", "g"])
    np.testing.assert_allclose(dense[0], np.array([0.5, 0.3, 0.3]) - 0.3)
    np.testing.assert_allclose(dense[1], [0.1 - 0.3])
    # groups are separate; group_std divides by the std of the group's episode returns
    sep = group_advantages([np.array([1.0]), np.array([0.0]), np.array([5.0])], ["a", "a", "b"], "group_std")
    np.testing.assert_allclose([sep[0][0], sep[1][0], sep[2][0]], [1.0, -1.0, 0.0])


def test_running_moments_match_numpy():
    m = RunningMoments()
    data = np.random.default_rng(0).normal(2.0, 3.0, size=100)
    for chunk in np.split(data, 5):
        m.update(chunk)
    assert m.mean == pytest.approx(data.mean()) and m.std == pytest.approx(data.std())


# ---------------------------------------------------------------------------------------------- toy envs
class Letters(TextEnv):
    """Write some text; the progress is the share of the letter a in the last thing written."""

    task_name = "Letters"

    def task_ids(self, split: str = "test") -> list[str]:
        return [f"{split}-{i}" for i in range(4)]

    def _load_task(self, task_id: str) -> tuple[str, str]:
        self._acts: list[str] = []
        return "write the letter a", "Write something."

    def _step(self, action: str) -> StepOutcome:
        self._acts.append(action)
        return StepOutcome(f"You wrote {action}.")

    def _progress(self) -> float:
        last = self._acts[-1] if self._acts else ""
        return last.count("a") / max(1, len(last))

    def _success(self) -> bool:
        return False


class Distinct(Letters):
    """Say different things; the progress is the number of distinct things said, out of three."""

    task_name = "Distinct"

    def _progress(self) -> float:
        return min(1.0, len(set(self._acts)) / 3)


class RepeatRM:
    """A hackable RM: the value of a state grows with its repeated actions."""

    def score(self, states):
        return np.array([len(s.steps) - len({st.action for st in s.steps}) for s in states], dtype=float)


@pytest.fixture(scope="module")
def tiny_parts():
    from agentrm_gym.agents.tiny import train_tokenizer

    corpus = ["### User:\nWrite something.\n\n### Assistant:\nThought: x\nAction: " + w
              for w in ("a", "b", "cab", "abba", "dog")] * 5
    return train_tokenizer(corpus, 300)


def _policy(tokenizer):
    from agentrm_gym.agents.hf import TransformersPolicy
    from agentrm_gym.agents.prompts import CompactPromptBuilder
    from agentrm_gym.agents.tiny import build_tiny_model

    model = build_tiny_model(tokenizer, n_layer=1, n_embd=32, n_head=2, n_positions=128, seed=0)
    return TransformersPolicy(model, tokenizer, builder=CompactPromptBuilder(), max_new_tokens=2, seed=0)


def _trainer(tokenizer, spec, env_cls, out=None, **cfg):
    from agentrm_gym.rl.policy_gradient import PolicyGradientTrainer, RLConfig

    base = {"tasks": [env_cls.task_name], "group_size": 8, "groups": 2, "lr": 3e-2, "kl_coef": 0.0, "epochs": 2}
    return PolicyGradientTrainer(_policy(tokenizer), spec, RLConfig(**{**base, **cfg}), out=out,
                                 make_env=lambda task, split: env_cls(split=split))


def test_short_rl_run_learns_the_rewarded_letter(tiny_parts):
    trainer = _trainer(tiny_parts, make_reward_spec("outcome"), Letters, env_steps=16 * 12, max_turns=1)
    history = trainer.train().history
    progress = [h["progress"] for h in history]
    assert len(history) == 12
    assert np.mean(progress[-3:]) > np.mean(progress[:3]) + 0.3, progress
    for key in ("kl", "entropy", "turn_tokens", "episode_return", "batch_spearman"):
        assert key in history[-1]


def test_resume_after_interruption_gives_the_same_weights(tiny_parts, tmp_path):
    import torch

    def weights(trainer):
        return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    kw = {"env_steps": 16 * 2 * 4, "max_turns": 2, "kl_coef": 0.05}
    full = _trainer(tiny_parts, make_reward_spec("progress"), Letters, out=tmp_path / "full", **kw)
    full.train()
    target = weights(full)

    class Interrupted(Exception):
        pass

    def interrupt(rec):
        if rec["iteration"] == 2:
            raise Interrupted

    first = _trainer(tiny_parts, make_reward_spec("progress"), Letters, out=tmp_path / "cut", **kw)
    with pytest.raises(Interrupted):
        first.train(on_iteration=interrupt)
    assert not (tmp_path / "cut" / "done.json").exists()
    again = _trainer(tiny_parts, make_reward_spec("progress"), Letters, out=tmp_path / "cut", **kw)
    result = again.train()
    assert again.iteration == full.iteration == 4
    for k, v in weights(again).items():
        assert torch.equal(v, target[k]), k
    assert [h["progress"] for h in result.history] == [h["progress"] for h in full.history]
    assert (tmp_path / "cut" / "policy" / "config.json").exists()


def test_hacking_alarm_on_synthetic_batches():
    alarm = HackingAlarm(window=5, rho=0.6, min_drop=0.02)
    honest = [alarm.update([r, r + 0.1, r + 0.2], [r, r + 0.1, r + 0.2]) for r in np.linspace(0, 0.5, 6)]
    assert not any(x.hacking for x in honest) and honest[-1].batch_rho == pytest.approx(1.0)
    alarm = HackingAlarm(window=5, rho=0.6, min_drop=0.02)
    readings = [alarm.update([r, r + 0.1, r + 0.3], [1 - r, 0.9 - r, 0.8 - r]) for r in np.linspace(0, 0.5, 6)]
    assert [x.hacking for x in readings[:4]] == [False] * 4  # the window is not full yet
    assert readings[4].hacking and readings[5].hacking and "reward hacking" in readings[4].message
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_hacking_alarm_fires_on_an_rm_that_rewards_repeats(tiny_parts, tmp_path):
    from agentrm_gym.rl.rewards import RewardSpec

    lines: list[str] = []
    trainer = _trainer(tiny_parts, RewardSpec("rm-only", RepeatRM()), Distinct, out=tmp_path / "hack",
                       env_steps=3 * 16 * 20, max_turns=3, stop_on_hacking=True)
    trainer.log = lines.append
    result = trainer.train()
    assert result.stopped == "hacking", [(h["progress"], h["episode_return"]) for h in result.history]
    first, last = result.history[0], result.history[-1]
    assert last["episode_return"] > first["episode_return"] and last["progress"] < first["progress"]
    assert any("ALARM" in s for s in lines)
    assert len(result.history) < 20  # stopped early


@pytest.mark.slow
def test_agentrm_rl_smoke_end_to_end(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "rl"
    proc = subprocess.run([sys.executable, "-m", "agentrm_gym", "rl", "--preset", "smoke", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for spec in REWARD_SPECS:
        assert (out / "runs" / f"{spec}__s0" / "done.json").exists(), spec
        assert f"| {spec} |" in proc.stdout
    assert "paired gains" in proc.stdout and (out / "results.json").exists()
