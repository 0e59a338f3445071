"""The pipeline's commands: ``agentrm pipeline expert | sft | explore | extract | train-rm | evaluate | all``
and ``agentrm table``.

Every command takes the run directory (``--out``; ``agentrm pipeline all`` makes a new
``runs/{name}__pipeline__{seed}__{time}`` without it), a ``--preset`` (smoke, demo, full) and any number
of ``--set field=value`` overrides of :class:`agentrm_gym.train.config.PipelineConfig` (``agentrm pipeline
all --fields`` lists them with their help). A stage reads the files of the stages before it in the same
run directory and skips work already done, so an interrupted command is resumed by running it again.
The stage names are those of :data:`agentrm_gym.train.pipeline.STAGE_NAMES`.
"""

from __future__ import annotations

import json

import typer

from agentrm_gym.cli.groups import pipeline_app

STAGE_HELP = {
    "expert": "Stage 1: the oracle plays train tasks -> expert/trajectories.jsonl and ShareGPT expert/sft.jsonl.",
    "sft": "Stage 2: tokenizer + tiny GPT-2 trained on the expert dialogues -> sft/policy.",
    "explore": "Stage 3: MCTS with the SFT policy on held-in train tasks -> explore/trees/*.jsonl.",
    "extract": "Stage 4: (state, value) pairs from tree nodes visited >= lambda times (or TD/MC) -> extract/pairs.jsonl.",
    "train-rm": "Stage 5: the explicit RM of rm_kind (pooled: frozen encoder + ridge head; value: fine-tuned, MSE) "
                "on the pairs -> rm/.",
    "evaluate": "Stage 6: greedy / Best-of-N / beam with the RM on every task's test split -> eval/table.md.",
}


def _config(preset_name: str, overrides: list[str] | None, out: str | None) -> tuple[object, str]:
    from pathlib import Path

    from agentrm_gym.train.pipeline import load_config, new_run_dir, preset

    if out and (Path(out) / "config.json").exists() and not preset_name:
        cfg = load_config(str(Path(out) / "config.json"))
    else:
        cfg = preset(preset_name or "demo")
    cfg = cfg.override(list(overrides or []))
    return cfg, out or str(new_run_dir(cfg))


PRESET_OPT = typer.Option("", "--preset", help="smoke | demo | full (default: the run's saved config, else demo)")
SET_OPT = typer.Option(None, "--set", help="override a config field: --set eval_episodes=4 (repeatable)")
WORKERS_OPT = typer.Option(None, "--workers", help="worker processes for expert/explore/evaluate (0: one per core); "
                                                   "same output for any number")
RAY_OPT = typer.Option(None, "--ray", help="run the workers on Ray: local | auto | a cluster address "
                                           "(needs ray: the dist extra of agentrm-gym)")


def scale_overrides(overrides: list[str] | None, workers: int | None, ray: str | None) -> list[str]:
    """``--workers`` / ``--ray`` as the ``--set`` overrides they stand for."""
    extra = [f"workers={workers}"] if workers is not None else []
    return list(overrides or []) + extra + ([f"ray={ray}"] if ray is not None else [])


def _stage_command(stage: str):  # noqa: ANN202 - typer reads the signature
    def command(
        out: str = typer.Option(..., "--out", help="the run directory (shared by all stages of one run)"),
        preset_name: str = PRESET_OPT,
        overrides: list[str] = SET_OPT,
        workers: int = WORKERS_OPT,
        ray: str = RAY_OPT,
    ) -> None:
        from agentrm_gym.train.pipeline import run_stage

        cfg, root = _config(preset_name, scale_overrides(overrides, workers, ray), out)
        summary = run_stage(cfg, root, stage)
        typer.echo(json.dumps(summary, indent=1, default=str))
        if stage == "evaluate":
            from pathlib import Path

            typer.echo((Path(root) / "eval" / "table.md").read_text(encoding="utf-8"))

    command.__doc__ = STAGE_HELP[stage]
    return command


def run_all(
    out: str = typer.Option(None, "--out", help="run directory (default: runs/{name}__pipeline__{seed}__{time})"),
    preset_name: str = PRESET_OPT,
    overrides: list[str] = SET_OPT,
    stages: str = typer.Option("", "--stages", help="comma-separated subset: expert,sft,explore,extract,train-rm,evaluate"),
    fields: bool = typer.Option(False, "--fields", help="list the config fields with their help and exit"),
    workers: int = WORKERS_OPT,
    ray: str = RAY_OPT,
) -> None:
    """Run the whole AgentRM pipeline (finished stages of an existing --out are skipped) and print Table 1."""
    from agentrm_gym.train.pipeline import field_help, run_pipeline

    if fields:
        for name, text in field_help().items():
            typer.echo(f"{name:26s} {text}")
        return
    cfg, root = _config(preset_name, scale_overrides(overrides, workers, ray), out)
    typer.echo(f"run directory: {root}")
    record = run_pipeline(cfg, root, [s.strip() for s in stages.split(",") if s.strip()] or None, log=typer.echo)
    if "table_md" in record:
        typer.echo(record["table_md"])


def table(out: str = typer.Option(..., "--out", help="a run directory with eval/results.json")) -> None:
    """Print the Table-1-style results of a finished (or partly evaluated) run."""
    from pathlib import Path

    from agentrm_gym.train.config import load_config
    from agentrm_gym.train.evaluate import aggregate, render_markdown
    from agentrm_gym.trajectory import read_jsonl

    root = Path(out)
    md = root / "eval" / "table.md"
    if md.exists():
        typer.echo(md.read_text(encoding="utf-8"))
        return
    episodes = root / "eval" / "episodes.jsonl"
    if not episodes.exists():
        raise typer.BadParameter(f"{episodes} does not exist: run `agentrm pipeline evaluate --out {out}` first")
    cfg = load_config(str(root / "config.json"))
    results = {"table": aggregate(list(read_jsonl(episodes)), list(cfg.eval_tasks), list(cfg.rm_tasks))}
    typer.echo("(partial: evaluation not finished)\n" + render_markdown(results, list(cfg.eval_tasks), list(cfg.rm_tasks)))


def register(app: typer.Typer) -> None:
    """The stages and ``all`` in the ``pipeline`` group, ``table`` at the top level."""
    for stage in STAGE_HELP:
        pipeline_app.command(stage)(_stage_command(stage))
    pipeline_app.command("all")(run_all)
    app.command("table")(table)
