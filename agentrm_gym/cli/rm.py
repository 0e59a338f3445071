"""``agentrm rm eval`` (RMB-style RM quality on oracle comparison sets), ``agentrm rm train`` and
``agentrm rm rescore`` (any RM on a run's saved Best-of-N candidates, offline).

``--rm`` takes every RM spec of :func:`agentrm_gym.rm.make_reward_model` (an RM or run directory, a URL
of ``agentrm serve rm``, ``python:module:attr``). ``agentrm rm train`` trains a value RM
(:func:`agentrm_gym.rm.train_value_rm`) on oracle-labelled rollouts of one env; the pipeline's RM stage on
MCTS labels is ``agentrm pipeline train-rm``.
"""

from __future__ import annotations

import json
import math

import typer

from agentrm_gym.cli.groups import rm_app

#: The help of every ``--rm`` option (the specs of :func:`agentrm_gym.rm.make_reward_model`).
RM_HELP = ("reward model: an RM directory, a pipeline run directory (its rm/), a URL of `agentrm serve rm`, or "
           "python:module:attr (an object with .score(states), a factory, or a function state -> float)")


def rm_eval(
    rm: str = typer.Option(..., "--rm", help=RM_HELP),
    env: str = typer.Option(..., "--env", help="env id or task name, e.g. agentrm/Maze-v0"),
    episodes: int = typer.Option(10, "--episodes", help="held-out tasks to build comparison sets from"),
    split: str = typer.Option("test", help="task split"),
    seed: int = typer.Option(0, help="seed of the set building"),
    as_json: bool = typer.Option(False, "--json", help="print the metrics as JSON"),
) -> None:
    """Pairwise accuracy, Best-of-N accuracy and Spearman (oracle values) of a reward model on an env."""
    from agentrm_gym.cli.envs import format_table
    from agentrm_gym.rm import make_reward_model
    from agentrm_gym.rm.metrics import build_comparison_sets, evaluate_rm

    model = make_reward_model(rm)
    sets = build_comparison_sets(env, episodes=episodes, seed=seed, split=split)
    metrics = evaluate_rm(model, sets)
    metrics = {"env": env, "rm": rm, **metrics}
    if as_json:
        typer.echo(json.dumps(metrics))
        return

    def fmt(v: object) -> str:
        return "n/a" if isinstance(v, float) and math.isnan(v) else (f"{v:.3f}" if isinstance(v, float) else str(v))

    keys = ["pairwise_accuracy", "best_of_n_accuracy", "spearman", "pairs", "best_of_n_sets", "valued_states"]
    typer.echo(format_table(["metric", "value"], [[k, fmt(metrics[k])] for k in keys]))


def train_rm(
    env: str = typer.Option(..., "--env", help="env id with oracle values (Maze)"),
    out: str = typer.Option(..., "--out", help="output directory of the RM"),
    backbone: str = typer.Option("tiny", help="'tiny' (from scratch), 'minilm' (pretrained) or a model path"),
    episodes: int = typer.Option(60, help="epsilon-greedy oracle rollouts to label"),
    epsilon: float = typer.Option(0.4, help="probability of a random admissible action in the rollouts"),
    split: str = typer.Option("train", help="task split of the rollouts"),
    epochs: int = typer.Option(3),
    batch_size: int = typer.Option(32, "--batch-size"),
    max_length: int = typer.Option(128, "--max-length"),
    seed: int = typer.Option(0),
) -> None:
    """Train a value RM on oracle-labelled rollouts (values 1 - d/d0 for Maze) and save it to --out."""
    from agentrm_gym.rm import TrainConfig, train_value_rm
    from agentrm_gym.rm.metrics import oracle_value_samples

    samples = oracle_value_samples(env, episodes=episodes, epsilon=epsilon, seed=seed, split=split)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, max_length=max_length, seed=seed)
    model = train_value_rm(samples, config, backbone=backbone, out_dir=out)
    typer.echo(json.dumps({"out": out, "samples": len(samples), **model.card().get("metrics", {})}))


def rescore(
    run: str = typer.Argument(..., help="a run directory whose evaluate stage saved eval/candidates.jsonl"),
    rm: str = typer.Option(..., "--rm", help=RM_HELP),
    name: str = typer.Option("", "--name", help="row name (default: the RM directory's name)"),
) -> None:
    """Re-score a run's saved Best-of-N candidates with another RM; print its Best-of-N row and paired gains."""
    from pathlib import Path

    from agentrm_gym.rm import make_reward_model
    from agentrm_gym.rm.spec import rm_identity
    from agentrm_gym.train import table as tab
    from agentrm_gym.train.config import load_config
    from agentrm_gym.train.evaluate import build_results
    from agentrm_gym.train.evaluate import rescore as rescore_candidates
    from agentrm_gym.trajectory import read_jsonl

    root = Path(run)
    cand_path = root / "eval" / "candidates.jsonl"
    if not cand_path.is_file():
        raise typer.BadParameter(f"{cand_path} does not exist: run `agentrm pipeline evaluate --out {run}` first")
    model = make_reward_model(rm)
    label = name or Path(rm.rstrip("/")).name or "rm"
    cfg = load_config(str(root / "config.json"))
    scores = rescore_candidates(list(read_jsonl(cand_path)), model, root / "eval" / "scores" / f"{label}.jsonl",
                                desc=f"rescore {label}", identity=rm_identity(rm))
    results = build_results(cfg, root / "eval", {label: scores})
    tasks, held_in = list(cfg.eval_tasks), list(cfg.rm_tasks)
    keep = {m: r for m, r in results["table"].items()
            if m in ("greedy", "sample") or m.endswith(f"({label})") or m.startswith("pass@")}
    typer.echo(tab.format_table(keep, tasks, held_in, "progress_rate", {}))
    gains = {m: g for m, g in results["gains"].items() if m.endswith(f"({label})")}
    typer.echo("\n" + tab.format_gains(gains, "progress_rate"))


def register(app: typer.Typer) -> None:
    """The commands live in the ``rm`` group (added to the app by ``agentrm_gym.cli``)."""
    rm_app.command("eval")(rm_eval)
    rm_app.command("train")(train_rm)
    rm_app.command("rescore")(rescore)
