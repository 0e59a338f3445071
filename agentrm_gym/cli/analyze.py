"""``agentrm analyze NAME RUN``: what a finished run's explicit RM rests on, from its held-in train pairs
(``RUN/analysis/<name>.md``, ``.json``, ``.png``). The work is :mod:`agentrm_gym.train.analyses`."""

from __future__ import annotations

import typer


def analyze(
    name: str = typer.Argument(..., help="state-ablation | data-scaling"),
    run: str = typer.Argument(..., help="a finished run directory of `agentrm pipeline` (extract and train-rm done)"),
) -> None:
    """Cross-validate the run's RM with parts of its input or data taken away; print the markdown table."""
    from pathlib import Path

    from agentrm_gym.train.analyses import ANALYSES, RUNNERS

    if name not in RUNNERS:
        raise typer.BadParameter(f"unknown analysis {name!r}; known: "
                                 + "; ".join(f"{k} ({v})" for k, v in ANALYSES.items()))
    if not Path(run).is_dir():
        raise typer.BadParameter(f"{run}: no such run directory")
    RUNNERS[name](run)
    md = Path(run) / "analysis" / f"{name.replace('-', '_')}.md"
    typer.echo(md.read_text(encoding="utf-8"))
    typer.echo(f"wrote {md}")


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze)
