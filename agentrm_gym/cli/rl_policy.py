"""``agentrm rl``: RL of a run's SFT policy under each reward spec, evaluated before and after (issue 22).

The experiment is :func:`agentrm_gym.rl.experiment.run_experiment`; this command picks its preset, builds
the ``smoke`` preset's pipeline run when ``--run`` is not given, and prints the table. Running it again on
the same ``--out`` resumes (finished RL runs and evaluation episodes are kept).
"""

from __future__ import annotations

from pathlib import Path

import typer


def rl(
    run: str = typer.Option(None, "--run", help="a finished pipeline run (its sft/policy and rm/); default with "
                                                "--preset smoke: build the smoke pipeline run in OUT/pipeline"),
    preset: str = typer.Option("smoke", "--preset", help="smoke | demo | full (tasks, budgets, seeds)"),
    specs: str = typer.Option("", "--specs", help="reward specs, comma-separated (default: the preset's): success, "
                                                  "outcome, rm, rm-only, progress, heuristic"),
    seeds: str = typer.Option("", "--seeds", help="seeds, comma-separated (default: the preset's)"),
    env_steps: int = typer.Option(0, "--env-steps", help="env-step budget of every RL run (default: the preset's)"),
    out: str = typer.Option(None, "--out", help="experiment directory (default runs/rl__{preset}__{time})"),
    stop_on_hacking: bool = typer.Option(False, "--stop-on-hacking",
                                         help="stop an RL run when the reward-hacking alarm fires"),
    quiet: bool = typer.Option(False, "--quiet", help="only the table"),
) -> None:
    """RL the run's SFT policy with each reward spec at an equal env-step budget; print the before/after table."""
    import time

    from agentrm_gym.rl.experiment import experiment_preset, run_experiment

    out_dir = Path(out or f"runs/rl__{preset}__{int(time.time())}")
    rl_changes: dict[str, object] = {}
    if env_steps:
        rl_changes["env_steps"] = env_steps
    if stop_on_hacking:
        rl_changes["stop_on_hacking"] = True
    try:
        exp = experiment_preset(preset, specs=[s.strip() for s in specs.split(",") if s.strip()] or None,
                                seeds=[int(s) for s in seeds.split(",") if s.strip()] or None, rl=rl_changes)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    log = (lambda s: None) if quiet else (lambda s: typer.echo(s, err=True))
    if run is None:
        if preset != "smoke":
            raise typer.BadParameter(f"--preset {preset} needs --run RUN (a finished pipeline run, e.g. runs/demo)")
        from agentrm_gym.train.pipeline import preset as pipeline_preset
        from agentrm_gym.train.pipeline import run_pipeline

        run = str(out_dir / "pipeline")
        run_pipeline(pipeline_preset("smoke"), run, log=log)
    elif not (Path(run) / "config.json").is_file():
        raise typer.BadParameter(f"{run}: not a pipeline run (no config.json); make one with `agentrm pipeline all`")
    run_experiment(run, exp, out_dir, log=log)
    typer.echo((out_dir / "table.md").read_text(encoding="utf-8"))


def register(app: typer.Typer) -> None:
    app.command("rl")(rl)
