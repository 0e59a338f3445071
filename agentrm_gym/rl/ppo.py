"""MaskablePPO (sb3-contrib) on a text env: success-rate curves, TensorBoard scalars, the caller's callbacks.

:func:`train_maskable_ppo` builds the env with :func:`agentrm_gym.wrappers.sb3.make_rl_env` (the reward chosen
by a spec: ``sparse``, ``progress`` or ``rm:SPEC``), trains an ``MlpPolicy`` on it and evaluates the greedy
masked policy every ``eval_every`` steps (and at the end) on a sparse-reward copy of the env
(:func:`evaluate_success`). TensorBoard, under ``logdir/<env>__ppo__<seed>_<n>/``: ``charts/success_rate``,
``charts/progress_rate``, the hyperparameters as text, and SB3's own ``rollout/`` and ``train/`` scalars.
Needs the ``[rl]`` extra (stable-baselines3, sb3-contrib); imports are lazy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from agentrm_gym.extras import require_extra
from agentrm_gym.tblog import tensorboard_available
from agentrm_gym.wrappers.sb3 import make_rl_env


def require_sb3() -> tuple[Any, Any]:
    """``(stable_baselines3, sb3_contrib)`` or :class:`~agentrm_gym.core.MissingExtra` naming the extra."""
    stable_baselines3 = require_extra(("stable_baselines3", "sb3_contrib"), "rl", "RL training")
    import sb3_contrib

    return stable_baselines3, sb3_contrib


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
    callbacks: Any = None,
) -> PPOResult:
    """Train MaskablePPO on the adapted env; evaluate every ``eval_every`` steps (and at the end).

    Evaluation uses a sparse-reward copy of the env on ``eval_split`` (default: ``split``) with the policy's
    greedy masked action; each point is logged to TensorBoard as ``charts/success_rate`` and
    ``charts/progress_rate``, appended to the returned curve and passed to ``on_eval``.

    Args:
        env_id: a registered id or task name.
        reward: ``sparse``, ``progress`` or ``rm:SPEC`` (``rm`` with an already loaded ``rm``); see
            :func:`agentrm_gym.wrappers.sb3.make_rl_env`, which also takes ``max_actions``, ``feature_dim``,
            ``coef`` and ``gamma``.
        logdir: the TensorBoard directory (``None``: no event files; none either without tensorboard).
        callbacks: an SB3 ``BaseCallback`` or a list of them, run by ``learn`` after the evaluation callback
            (e.g. :func:`agentrm_gym.rl.callbacks.progress_bar`).
        torch_threads: torch threads while training (default 1: faster for small MLPs on a shared CPU),
            restored afterwards.
        n_steps, batch_size, learning_rate, ent_coef, verbose: MaskablePPO's own.

    Raises:
        MissingExtra: stable-baselines3 or sb3-contrib is not installed.
    """
    require_sb3()
    import torch

    old_threads = torch.get_num_threads()
    if torch_threads:
        torch.set_num_threads(torch_threads)
    try:
        return _train(
            env_id, reward=reward, steps=steps, logdir=logdir, seed=seed, split=split, eval_split=eval_split,
            eval_every=eval_every, eval_episodes=eval_episodes, max_actions=max_actions, feature_dim=feature_dim,
            coef=coef, gamma=gamma, rm=rm, n_steps=n_steps, batch_size=batch_size, learning_rate=learning_rate,
            ent_coef=ent_coef, verbose=verbose, on_eval=on_eval, callbacks=callbacks,
        )
    finally:
        torch.set_num_threads(old_threads)


def _train(
    env_id: str, *, reward: str, steps: int, logdir: str | None, seed: int, split: str, eval_split: str | None,
    eval_every: int, eval_episodes: int, max_actions: int, feature_dim: int, coef: float, gamma: float, rm: Any,
    n_steps: int, batch_size: int, learning_rate: float, ent_coef: float, verbose: int,
    on_eval: Callable[[dict[str, float]], None] | None, callbacks: Any,
) -> PPOResult:
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import TensorBoardOutputFormat
    from stable_baselines3.common.monitor import Monitor

    hyperparameters = {
        "env": env_id, "reward": reward, "steps": steps, "seed": seed, "split": split, "eval_split": eval_split,
        "eval_every": eval_every, "eval_episodes": eval_episodes, "max_actions": max_actions,
        "feature_dim": feature_dim, "coef": coef, "gamma": gamma, "n_steps": n_steps, "batch_size": batch_size,
        "learning_rate": learning_rate, "ent_coef": ent_coef,
    }
    env = Monitor(make_rl_env(env_id, reward, split, max_actions, feature_dim, coef, gamma, rm=rm))
    eval_env = make_rl_env(env_id, "sparse", eval_split or split, max_actions, feature_dim)
    eval_ids = eval_env.unwrapped.task_ids(eval_split or split)[:eval_episodes]
    # SB3 opens its own SummaryWriter and fails without tensorboard: then train on, without event files
    tb_dir = logdir if logdir and tensorboard_available() else None
    model = MaskablePPO(
        "MlpPolicy", env, n_steps=n_steps, batch_size=batch_size, learning_rate=learning_rate, gamma=gamma,
        ent_coef=ent_coef, seed=seed, verbose=verbose, tensorboard_log=tb_dir, device="cpu",
    )
    curve: list[dict[str, float]] = []

    def record(n: int) -> None:
        point = {"steps": float(n), **evaluate_success(model, eval_env, len(eval_ids), seed=10_000, task_ids=eval_ids)}
        curve.append(point)
        model.logger.record("charts/success_rate", point["success_rate"])
        model.logger.record("charts/progress_rate", point["progress_rate"])
        if on_eval:
            on_eval(point)

    class SuccessRateEval(BaseCallback):
        def _on_training_start(self) -> None:
            for fmt in self.logger.output_formats:
                if isinstance(fmt, TensorBoardOutputFormat):
                    fmt.writer.add_text("hyperparameters", json.dumps(hyperparameters, indent=1))

        def _on_step(self) -> bool:
            if eval_every and self.num_timesteps % eval_every == 0:
                record(self.num_timesteps)
            return True

    extra = [] if callbacks is None else list(callbacks) if isinstance(callbacks, list | tuple) else [callbacks]
    t0 = time.time()
    model.learn(total_timesteps=steps, callback=[SuccessRateEval(), *extra],
                tb_log_name=f"{env_id.replace('/', '_')}__ppo__{seed}")
    if not curve or curve[-1]["steps"] != model.num_timesteps:
        record(model.num_timesteps)
        model.logger.dump(model.num_timesteps)  # learn has returned: nothing else writes this last point
    seconds = time.time() - t0
    env.close()
    eval_env.close()
    return PPOResult(model=model, curve=curve, seconds=seconds, logdir=logdir or "")
