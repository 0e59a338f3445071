"""``agentrm ppo``: MaskablePPO on an adapted text env, sparse or RM-shaped reward, TensorBoard logs.

The trainer is :func:`agentrm_gym.rl.ppo.train_maskable_ppo`. A tqdm bar of the environment steps
(:func:`agentrm_gym.rl.callbacks.progress_bar`, passed as a callback) goes to stderr, so stdout keeps the
JSON lines of the evaluations and the summary: shown on a terminal, forced with ``--progress``, off with
``--no-progress``.
"""

from __future__ import annotations

import json
import time

import typer


def ppo(
    env: str = typer.Option(..., "--env", help="env id or task name, e.g. agentrm/Maze-v0"),
    reward: str = typer.Option("sparse", help="sparse | progress | rm:SPEC (sparse + potential shaping by the RM "
                                              "of any --rm spec: a directory, a URL, python:module:attr)"),
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
    from agentrm_gym.rl.callbacks import progress_bar
    from agentrm_gym.rl.ppo import train_maskable_ppo

    logdir = logdir or f"runs/{get_spec(env).name}__ppo__{seed}__{int(time.time())}"
    result = train_maskable_ppo(
        env, reward=reward, steps=steps, logdir=logdir, seed=seed, split=split, eval_split=eval_split,
        eval_every=eval_every, eval_episodes=eval_episodes, max_actions=max_actions, feature_dim=feature_dim,
        coef=coef, gamma=gamma, n_steps=n_steps, on_eval=lambda p: typer.echo(json.dumps(p)),
        callbacks=progress_bar(steps, disable=None if progress is None else not progress),
    )
    typer.echo(json.dumps({"steps": steps, "seconds": round(result.seconds, 1), "logdir": logdir,
                           "final_success_rate": result.curve[-1]["success_rate"]}))


def register(app: typer.Typer) -> None:
    app.command("ppo")(ppo)
