"""The trainers of :mod:`agentrm_gym.rl` on the adapted text envs: check_env, MaskablePPO runs, RM-shaped
reward, the caller's callbacks, the ``agentrm ppo`` CLI (progress bar, TensorBoard files), the missing extra."""

from __future__ import annotations

import json
import sys

import gymnasium as gym
import numpy as np
import pytest

import agentrm_gym  # noqa: F401
from agentrm_gym.core import MissingExtra
from agentrm_gym.extras import is_available
from agentrm_gym.rl.ppo import train_maskable_ppo
from agentrm_gym.rm import FunctionRewardModel
from agentrm_gym.wrappers.sb3 import make_rl_env

RL_ENVS = ["agentrm/Maze-v0", "agentrm/BabyAI-v0"]
HAS_SB3 = is_available("stable_baselines3") and is_available("sb3_contrib")
needs_sb3 = pytest.mark.skipif(not HAS_SB3, reason="needs the [rl] extra")


def require_env(env_id: str) -> None:
    if env_id not in gym.registry:
        pytest.skip(f"{env_id} is not registered yet (its env module is being built)")


@needs_sb3
@pytest.mark.parametrize("env_id", RL_ENVS)
def test_sb3_check_env_on_adapted_env(env_id: str) -> None:
    from stable_baselines3.common.env_checker import check_env

    require_env(env_id)
    for reward in ("sparse", "progress"):
        env = make_rl_env(env_id, reward=reward, max_actions=16, feature_dim=64)
        check_env(env, warn=True, skip_render_check=True)
        obs, _ = env.reset(seed=0)
        mask = env.action_masks()
        assert mask.shape == (16,) and mask.any() and env.observation_space.contains(obs)
        env.close()


@needs_sb3
@pytest.mark.parametrize("env_id", RL_ENVS)
def test_maskable_ppo_runs_2000_steps(env_id: str, tmp_path) -> None:
    require_env(env_id)
    result = train_maskable_ppo(env_id, reward="sparse", steps=2000, logdir=str(tmp_path), n_steps=500,
                                batch_size=100, eval_episodes=3, feature_dim=64)
    assert result.model.num_timesteps >= 2000
    assert 0.0 <= result.curve[-1]["success_rate"] <= 1.0
    assert any(tmp_path.rglob("events.out.tfevents*"))


@needs_sb3
def test_ppo_with_rm_shaping_uses_the_rm() -> None:
    rm = FunctionRewardModel(lambda s: float(s.steps[-1].progress) if s.steps else 0.0)
    env = make_rl_env("agentrm/Maze-v0", reward="rm", rm=rm, feature_dim=64, gamma=1.0)
    env.reset(seed=0, options={"task_id": "gen-3"})
    base = env.unwrapped
    total_env, total = 0.0, 0.0
    done = False
    while not done:
        action = env.get_wrapper_attr("admissible").index(base.expert_action())
        _, r, term, trunc, info = env.step(action)
        total += r
        total_env += info["env_reward"]
        done = term or trunc
    # sparse reward 1 at success + telescoped potential V(s_T) - V(s_0) = 1 - 0
    assert info["success"] and total == pytest.approx(2.0) and rm.stats.states > 0
    result = train_maskable_ppo("agentrm/Maze-v0", reward="rm", rm=rm, steps=256, n_steps=128, batch_size=64,
                                eval_episodes=2, feature_dim=64)
    assert result.model.num_timesteps >= 256
    with pytest.raises(ValueError, match="reward"):
        make_rl_env("agentrm/Maze-v0", reward="dense")


@needs_sb3
def test_ppo_cli(tmp_path) -> None:
    from typer.testing import CliRunner

    from agentrm_gym.cli import app

    result = CliRunner().invoke(app, ["ppo", "--env", "maze", "--steps", "256", "--n-steps", "128",
                                      "--logdir", str(tmp_path), "--eval-episodes", "2", "--feature-dim", "64"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["steps"] == 256 and 0.0 <= summary["final_success_rate"] <= 1.0
    assert np.isfinite(summary["seconds"])


@needs_sb3
def test_trainer_runs_the_callers_callbacks() -> None:
    from stable_baselines3.common.callbacks import BaseCallback

    class Count(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.steps = self.starts = self.ends = 0

        def _on_training_start(self) -> None:
            self.starts += 1

        def _on_step(self) -> bool:
            self.steps += 1
            return True

        def _on_training_end(self) -> None:
            self.ends += 1

    one, two = Count(), Count()
    result = train_maskable_ppo("agentrm/Maze-v0", steps=128, n_steps=64, batch_size=64, eval_episodes=1,
                                feature_dim=32, callbacks=one)
    assert (one.starts, one.steps, one.ends) == (1, 128, 1) and result.model.num_timesteps == 128
    train_maskable_ppo("agentrm/Maze-v0", steps=64, n_steps=64, batch_size=64, eval_episodes=1, feature_dim=32,
                       callbacks=[two])
    assert two.steps == 64


@needs_sb3
def test_ppo_cli_progress_bar_and_tensorboard(tmp_path) -> None:
    from sb3_contrib import MaskablePPO
    from typer.testing import CliRunner

    from agentrm_gym.cli import app

    learn = MaskablePPO.learn
    result = CliRunner().invoke(app, ["ppo", "--env", "maze", "--steps", "128", "--n-steps", "64", "--progress",
                                      "--logdir", str(tmp_path), "--eval-episodes", "1", "--feature-dim", "32"])
    assert result.exit_code == 0, result.output
    assert "ppo:" in result.output and "/128" in result.output  # the bar, on stderr
    summary = json.loads(result.output.strip().splitlines()[-1])  # stdout's last line is still the summary
    assert summary["steps"] == 128
    assert MaskablePPO.learn is learn  # the bar is a callback: nothing is patched
    events = list(tmp_path.rglob("events.out.tfevents*"))
    assert events
    if is_available("tensorboard"):
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(events[0].parent)).Reload()
        assert {"charts/success_rate", "charts/progress_rate"} <= set(acc.Tags()["scalars"])
        assert acc.Scalars("charts/success_rate")[-1].step == 128  # the final evaluation is written too
        assert "hyperparameters/text_summary" in acc.Tags()["tensors"]


def test_missing_sb3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from agentrm_gym.cli import app

    for name in ("stable_baselines3", "sb3_contrib"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails, find_spec says absent
    for name in ("agentrm_gym.rl", "agentrm_gym.rl.ppo", "agentrm_gym.rl.callbacks"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import agentrm_gym.rl  # imported afresh, without the extra

    with pytest.raises(MissingExtra, match=r"pip install 'agentrm-gym\[rl\]'"):
        agentrm_gym.rl.train_maskable_ppo("agentrm/Maze-v0", steps=8)
    with pytest.raises(MissingExtra, match=r"agentrm-gym\[rl\]"):
        agentrm_gym.rl.progress_bar(8)
    result = CliRunner().invoke(app, ["ppo", "--env", "maze", "--steps", "8"])
    assert result.exit_code != 0 and "pip install 'agentrm-gym[rl]'" in result.output
