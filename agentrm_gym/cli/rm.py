"""``agentrm rm eval`` (RMB-style RM quality on oracle comparison sets), ``agentrm rm train`` and
``agentrm rm rescore`` (any RM on a run's saved Best-of-N candidates, offline).

``agentrm rm train`` trains a value RM on oracle-labelled rollouts of one env; the pipeline's RM stage on
MCTS labels is ``agentrm pipeline train-rm``. Both call :func:`agentrm_gym.rm.train_value_rm`.
"""

from __future__ import annotations

import json
import math

import typer

from agentrm_gym.cli.groups import rm_app


def rm_eval(
    rm: str = typer.Option(..., "--rm", help="reward-model directory, or a URL of `agentrm serve rm`"),
    env: str = typer.Option(..., "--env", help="env id or task name, e.g. agentrm/Maze-v0"),
    episodes: int = typer.Option(10, "--episodes", help="held-out tasks to build comparison sets from"),
    split: str = typer.Option("test", help="task split"),
    seed: int = typer.Option(0, help="seed of the set building"),
    as_json: bool = typer.Option(False, "--json", help="print the metrics as JSON"),
) -> None:
    """Pairwise accuracy, Best-of-N accuracy and Spearman (oracle values) of a reward model on an env."""
    from agentrm_gym.cli.envs import format_table
    from agentrm_gym.rm import load_reward_model
    from agentrm_gym.rm.metrics import build_comparison_sets, evaluate_rm

    if rm.startswith(("http://", "https://")):
        from agentrm_gym.rm.remote import RemoteRewardModel

        model = RemoteRewardModel(rm)
    else:
        model = load_reward_model(rm)
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
    rm: str = typer.Option(..., "--rm", help="reward-model directory, or a URL of `agentrm serve rm`"),
    name: str = typer.Option("", "--name", help="row name (default: the RM directory's name)"),
) -> None:
    """Re-score a run's saved Best-of-N candidates with another RM; print its Best-of-N row and paired gains."""
    from pathlib import Path

    from agentrm_gym.train import table as tab
    from agentrm_gym.train.config import load_config
    from agentrm_gym.train.evaluate import build_results
    from agentrm_gym.train.evaluate import rescore as rescore_candidates
    from agentrm_gym.trajectory import read_jsonl

    root = Path(run)
    cand_path = root / "eval" / "candidates.jsonl"
    if not cand_path.is_file():
        raise typer.BadParameter(f"{cand_path} does not exist: run `agentrm pipeline evaluate --out {run}` first")
    if rm.startswith(("http://", "https://")):
        from agentrm_gym.rm.remote import RemoteRewardModel

        model = RemoteRewardModel(rm)
    else:
        from agentrm_gym.rm import load_reward_model

        model = load_reward_model(rm)
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


def rm_identity(rm: str) -> str:
    """What a re-score cache is keyed by: a served RM's URL, or a SHA-256 of an RM directory's files."""
    import hashlib
    from pathlib import Path

    if rm.startswith(("http://", "https://")):
        return rm
    digest = hashlib.sha256()
    root = Path(rm)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def register(app: typer.Typer) -> None:
    """The commands live in the ``rm`` group (added to the app by ``agentrm_gym.cli``)."""
    rm_app.command("eval")(rm_eval)
    rm_app.command("train")(train_rm)
    rm_app.command("rescore")(rescore)
