"""``agentrm analyze NAME RUN [--size smoke|full]``: analyses of a finished run, each written to
``RUN/analysis/<name>.md`` (and ``.json``, ``.png``). The registry is :data:`agentrm_gym.train.analyses.RUNNERS`;
the work is in :mod:`agentrm_gym.train.analyses` (state-ablation, data-scaling),
:mod:`~agentrm_gym.train.analyses_labels` (labels), :mod:`~agentrm_gym.train.analyses_candidates`
(rm-candidates), :mod:`~agentrm_gym.train.analyses_search` (bon-scaling, weak-to-strong),
:mod:`~agentrm_gym.train.analyses_transfer` (heatmap) and :mod:`~agentrm_gym.train.analyses_perturb`
(perturbation)."""

from __future__ import annotations

import typer

#: The sizes of ``--size`` (an analysis without sizes has one: ``full``).
SIZES = ("smoke", "full")


def takes_size(runner: object) -> bool:
    """Whether an analysis function accepts ``size=`` (a keyword parameter named ``size`` or ``**kwargs``)."""
    import inspect

    params = inspect.signature(runner).parameters.values()  # type: ignore[arg-type]
    return any(p.name == "size" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def analyze(
    name: str = typer.Argument(..., help="state-ablation | data-scaling | labels | rm-candidates (the RM's train "
                                         "pairs) | bon-scaling | heatmap | perturbation | weak-to-strong (test "
                                         "episodes)"),
    run: str = typer.Argument(..., help="a finished run directory of `agentrm pipeline` (every stage done)"),
    size: str = typer.Option("full", "--size", help="smoke (a few episodes, for CI) | full (the run's episode "
                                                    "counts, cut to fit about 30 minutes on 2 cores)"),
) -> None:
    """Run one analysis on a finished run; print its markdown table and where it was written."""
    import time
    from pathlib import Path

    from agentrm_gym.train.analyses import ANALYSES, RUNNERS

    if name not in RUNNERS:
        raise typer.BadParameter(f"unknown analysis {name!r}; known: "
                                 + "; ".join(f"{k} ({v})" for k, v in ANALYSES.items()))
    if size not in SIZES:
        raise typer.BadParameter(f"unknown size {size!r}; use {' or '.join(SIZES)}")
    if not Path(run).is_dir():
        raise typer.BadParameter(f"{run}: no such run directory")
    runner = RUNNERS[name]
    started = time.time()
    if takes_size(runner):
        runner(run, size=size)
    else:
        if size != "full":
            typer.echo(f"note: {name} has one size (it reads the run's train pairs only); --size {size} ignored",
                       err=True)
        runner(run)
    md = Path(run) / "analysis" / f"{name.replace('-', '_')}.md"
    typer.echo(md.read_text(encoding="utf-8"))
    typer.echo(f"wrote {md} ({time.time() - started:.0f} s)")


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze)
