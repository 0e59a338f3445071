"""``agentrm report RUN``: ``RUN/report/report.md`` with the run's plots (Table 1, paired gains, Best-of-N
scaling, RM training curves). The work is :func:`agentrm_gym.train.report.write_report`."""

from __future__ import annotations

import typer


def report(
    run: str = typer.Argument(..., help="a run directory of `agentrm pipeline` or `agentrm demo`"),
) -> None:
    r"""Write RUN/report/report.md and its PNG plots (needs matplotlib: pip install 'agentrm-gym\[report]')."""
    from agentrm_gym.train.report import write_report

    typer.echo(f"wrote {write_report(run)}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
