"""stable-baselines3 on text envs: the adapter stack, MaskablePPO training and success-rate curves.

:func:`make_rl_env` builds ``reward wrapper -> AdmissibleActionsDiscrete -> TextFeatures`` around a text env,
with the reward chosen by a spec string: ``sparse`` (1 on success), ``progress`` (the env's own reward, the
progress increase), ``rm:PATH`` (sparse + potential shaping by the saved RM at PATH). :func:`train_maskable_ppo`
trains sb3-contrib's MaskablePPO with TensorBoard logs (``charts/success_rate``, ``charts/progress_rate`` from
periodic deterministic evaluations, plus SB3's own scalars) and returns the learning curve.
Needs the ``[rl]`` extra; imports are lazy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from agentrm_gym.extras import require_extra
from agentrm_gym.wrappers.discrete import AdmissibleActionsDiscrete
from agentrm_gym.wrappers.features import TextFeatures
from agentrm_gym.wrappers.process_reward import ProcessRewardWrapper, SuccessReward


def require_sb3() -> tuple[Any, Any]:
    """``(stable_baselines3, sb3_contrib)`` or :class:`MissingExtra` naming the extra."""
    stable_baselines3 = require_extra(("stable_baselines3", "sb3_contrib"), "rl", "RL training")
    import sb3_contrib

    return stable_baselines3, sb3_contrib


def make_rl_env(
    env_id: str, reward: str = "sparse", split: str = "train", max_actions: int = 16, feature_dim: int = 256,
    coef: float = 1.0, gamma: float = 0.99, rm: Any = None, env_kwargs: dict[str, Any] | None = None,
) -> gym.Env:
    """A text env adapted for SB3: Discrete actions with masks, Box features, the chosen reward.

    Args:
        env_id: a registered id or task name.
        reward: ``sparse``, ``progress`` or ``rm:PATH`` (sparse + potential shaping by that RM).
        rm: an already loaded RM to use with ``reward="rm"`` (saves loading it once per env).
        coef, gamma: the shaping's scale and discount (use the learner's gamma).
    """
    from agentrm_gym.registry import make

    env = make(env_id, split=split, **(env_kwargs or {}))
    return adapt_for_sb3(env, reward, max_actions, feature_dim, coef, gamma, rm=rm)


def adapt_for_sb3(
    env: gym.Env, reward: str = "sparse", max_actions: int = 16, feature_dim: int = 256, coef: float = 1.0,
    gamma: float = 0.99, rm: Any = None,
) -> gym.Env:
    """The adapter stack of :func:`make_rl_env` around an already made text env.

    It takes the env first, so it serves as stable-baselines3's ``wrapper_class``, whose VecEnvs need ``Box``
    observations and cannot hold a text env's ``Text`` space::

        from stable_baselines3.common.env_util import make_vec_env
        venv = make_vec_env("agentrm/Maze-v0", n_envs=4, wrapper_class=adapt_for_sb3,
                            wrapper_kwargs={"max_actions": 16, "feature_dim": 256})

    (``make_vec_env`` applies it outside its ``Monitor``, which so records the env's own progress reward.)
    The arguments are those of :func:`make_rl_env`.
    """
    if reward == "progress":
        pass
    elif reward == "sparse":
        env = SuccessReward(env)
    elif reward.startswith("rm"):
        if rm is None:
            path = reward.partition(":")[2]
            if not path:
                raise ValueError("reward 'rm:PATH' needs the RM directory after the colon")
            from agentrm_gym.rm import load_reward_model

            rm = load_reward_model(path)
        env = ProcessRewardWrapper(SuccessReward(env), rm, mode="potential", coef=coef, gamma=gamma)
    else:
        raise ValueError(f"reward must be 'sparse', 'progress' or 'rm:PATH', got {reward!r}")
    env = AdmissibleActionsDiscrete(env, max_actions=max_actions)
    return TextFeatures(env, dim=feature_dim)


def evaluate_success(model: Any, env: gym.Env, episodes: int, seed: int = 0, task_ids: list[str] | None = None) -> dict[str, float]:
    """Deterministic masked rollouts: success rate and mean final progress over ``episodes`` episodes."""
    successes, progress = [], []
    for k in range(episodes):
        options = {"task_id": task_ids[k % len(task_ids)]} if task_ids else None
        obs, info = env.reset(seed=seed + k, options=options)
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=True, action_masks=env.action_masks())
            obs, _, term, trunc, info = env.step(int(action))
            done = term or trunc
        successes.append(float(info.get("success", False)))
        progress.append(float(info.get("progress", 0.0)))
    return {"success_rate": float(np.mean(successes)), "progress_rate": float(np.mean(progress))}


@dataclass
class PPOResult:
    """What :func:`train_maskable_ppo` returns."""

    model: Any
    curve: list[dict[str, float]] = field(default_factory=list)  #: steps, success_rate, progress_rate
    seconds: float = 0.0
    logdir: str = ""


def train_maskable_ppo(
    env_id: str, reward: str = "sparse", steps: int = 2000, logdir: str | None = None, seed: int = 0,
    split: str = "train", eval_split: str | None = None, eval_every: int = 0, eval_episodes: int = 25,
    max_actions: int = 16, feature_dim: int = 256, coef: float = 1.0, gamma: float = 0.99, rm: Any = None,
    n_steps: int = 256, batch_size: int = 64, learning_rate: float = 3e-4, ent_coef: float = 0.01,
    verbose: int = 0, on_eval: Callable[[dict[str, float]], None] | None = None, torch_threads: int | None = 1,
) -> PPOResult:
    """Train MaskablePPO on the adapted env; evaluate every ``eval_every`` steps (and at the end).

    Evaluation uses a sparse-reward copy of the env on ``eval_split`` (default: ``split``) with the policy's
    greedy masked action; each point is logged to TensorBoard as ``charts/success_rate`` and
    ``charts/progress_rate`` and appended to the returned curve. ``torch_threads`` (default 1: faster for
    small MLPs on a shared CPU) is restored afterwards.
    """
    _, sb3c = require_sb3()
    import torch

    old_threads = torch.get_num_threads()
    if torch_threads:
        torch.set_num_threads(torch_threads)
    try:
        return _train(env_id, reward, steps, logdir, seed, split, eval_split, eval_every, eval_episodes, max_actions,
                      feature_dim, coef, gamma, rm, n_steps, batch_size, learning_rate, ent_coef, verbose, on_eval)
    finally:
        torch.set_num_threads(old_threads)


def _train(
    env_id: str, reward: str, steps: int, logdir: str | None, seed: int, split: str, eval_split: str | None,
    eval_every: int, eval_episodes: int, max_actions: int, feature_dim: int, coef: float, gamma: float, rm: Any,
    n_steps: int, batch_size: int, learning_rate: float, ent_coef: float, verbose: int,
    on_eval: Callable[[dict[str, float]], None] | None,
) -> PPOResult:
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor

    env = Monitor(make_rl_env(env_id, reward, split, max_actions, feature_dim, coef, gamma, rm=rm))
    eval_env = make_rl_env(env_id, "sparse", eval_split or split, max_actions, feature_dim)
    eval_ids = eval_env.unwrapped.task_ids(eval_split or split)[:eval_episodes]
    model = MaskablePPO(
        "MlpPolicy", env, n_steps=n_steps, batch_size=batch_size, learning_rate=learning_rate, gamma=gamma,
        ent_coef=ent_coef, seed=seed, verbose=verbose, tensorboard_log=logdir, device="cpu",
    )
    curve: list[dict[str, float]] = []

    def record(n: int) -> None:
        point = {"steps": float(n), **evaluate_success(model, eval_env, len(eval_ids), seed=10_000, task_ids=eval_ids)}
        curve.append(point)
        model.logger.record("charts/success_rate", point["success_rate"])
        model.logger.record("charts/progress_rate", point["progress_rate"])
        if on_eval:
            on_eval(point)

    class EvalCallback(BaseCallback):
        def _on_step(self) -> bool:
            if eval_every and self.num_timesteps % eval_every == 0:
                record(self.num_timesteps)
            return True

    t0 = time.time()
    model.learn(total_timesteps=steps, callback=EvalCallback(), tb_log_name=f"{env_id.replace('/', '_')}__ppo__{seed}")
    if not curve or curve[-1]["steps"] != model.num_timesteps:
        record(model.num_timesteps)
    seconds = time.time() - t0
    env.close()
    eval_env.close()
    return PPOResult(model=model, curve=curve, seconds=seconds, logdir=logdir or "")
