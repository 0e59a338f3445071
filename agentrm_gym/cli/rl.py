"""``agentrm ppo``: MaskablePPO on an adapted text env, sparse or RM-shaped reward, TensorBoard logs.

A tqdm bar of the environment steps goes to stderr (stdout keeps the JSON lines of the evaluations and the
summary): shown on a terminal, forced with ``--progress``, off with ``--no-progress``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer


def progress_callback(total: int, disable: bool | None = None) -> Any:
    """An SB3 callback drawing a tqdm bar of ``total`` environment steps on stderr (``disable=None``: only
    on a terminal). SB3's own ``progress_bar=True`` draws with rich on stdout, where the JSON lines go."""
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm.auto import tqdm

    class TqdmCallback(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = tqdm(total=total, desc="ppo", unit="step", file=sys.stderr, leave=False, disable=disable,
                            dynamic_ncols=True)

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return TqdmCallback()


@contextmanager
def ppo_progress(total: int, disable: bool | None = None) -> Iterator[None]:
    """While inside, ``MaskablePPO.learn`` also runs :func:`progress_callback` (the trainer,
    :func:`agentrm_gym.wrappers.sb3.train_maskable_ppo`, takes no callbacks of its own); restored on exit."""
    from sb3_contrib import MaskablePPO

    original = MaskablePPO.learn

    def learn(self: Any, *args: Any, callback: Any = None, **kwargs: Any) -> Any:
        bar = progress_callback(total, disable)
        if callback is None:
            callback = bar
        elif isinstance(callback, list):
            callback = [*callback, bar]
        else:
            callback = [callback, bar]
        return original(self, *args, callback=callback, **kwargs)

    MaskablePPO.learn = learn
    try:
        yield
    finally:
        MaskablePPO.learn = original


def ppo(
    env: str = typer.Option(..., "--env", help="env id or task name, e.g. agentrm/Maze-v0"),
    reward: str = typer.Option("sparse", help="sparse | progress | rm:PATH (sparse + potential shaping)"),
    steps: int = typer.Option(20_000, help="environment steps"),
    logdir: str = typer.Option(None, help="TensorBoard directory (default runs/{task}__ppo__{seed}__{time})"),
    split: str = typer.Option("train", help="task split to train on"),
    eval_split: str = typer.Option(None, "--eval-split", help="split of the periodic evaluations (default: --split)"),
    eval_every: int = typer.Option(0, "--eval-every", help="steps between evaluations (0: only at the end)"),
    eval_episodes: int = typer.Option(25, "--eval-episodes"),
    seed: int = typer.Option(0),
    max_actions: int = typer.Option(16, "--max-actions", help="size of the Discrete action space"),
    feature_dim: int = typer.Option(256, "--feature-dim", help="hashing features of goal + observation"),
    coef: float = typer.Option(1.0, help="shaping scale"),
    gamma: float = typer.Option(0.99, help="discount (PPO and the shaping)"),
    n_steps: int = typer.Option(256, "--n-steps", help="rollout length per PPO update"),
    progress: bool = typer.Option(None, "--progress/--no-progress",
                                  help="a progress bar on stderr (default: when stderr is a terminal)"),
) -> None:
    """Train MaskablePPO with SB3 on a text env and print its success-rate curve as JSON lines."""
    from agentrm_gym.registry import get_spec
    from agentrm_gym.wrappers.sb3 import train_maskable_ppo

    logdir = logdir or f"runs/{get_spec(env).name}__ppo__{seed}__{int(time.time())}"
    with ppo_progress(steps, disable=None if progress is None else not progress):
        result = train_maskable_ppo(
            env, reward=reward, steps=steps, logdir=logdir, seed=seed, split=split, eval_split=eval_split,
            eval_every=eval_every, eval_episodes=eval_episodes, max_actions=max_actions, feature_dim=feature_dim,
            coef=coef, gamma=gamma, n_steps=n_steps, on_eval=lambda p: typer.echo(json.dumps(p)),
        )
    typer.echo(json.dumps({"steps": steps, "seconds": round(result.seconds, 1), "logdir": logdir,
                           "final_success_rate": result.curve[-1]["success_rate"]}))


def register(app: typer.Typer) -> None:
    app.command("ppo")(ppo)
