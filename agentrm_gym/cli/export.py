"""``agentrm export RUN --format F --out FILE.jsonl``: a run's data for TRL / OpenRLHF / chat SFT trainers.

The work is :func:`agentrm_gym.train.export.export`; see docs/export.md for the formats.
"""

from __future__ import annotations

import typer

from agentrm_gym.train.export import FORMATS, LABELS, PAIRS, PLACEHOLDER, STEP_FORMATS


def export_command(
    run: str = typer.Argument(..., help="a run directory of `agentrm pipeline` (expert/, explore/, extract/)"),
    format: str = typer.Option(..., "--format", "-f", help=" | ".join(FORMATS)),  # noqa: A002
    out: str = typer.Option(..., "--out", "-o", help="the JSONL file to write"),
    labels: str = typer.Option("mcts", help="step labels of trl-stepwise / openrlhf-prm: " + " | ".join(LABELS)),
    threshold: float = typer.Option(0.5, help="a step is good when its value (in [0, 1]) is at least this"),
    step_format: str = typer.Option("full", "--step-format", help="a step as " + " | ".join(STEP_FORMATS)
                                    + " (Thought/Action/Observation lines, or the action text)"),
    pairs: str = typer.Option("siblings", help="rm-pairs from " + " | ".join(PAIRS)
                              + " (children of one MCTS node, or states of one task id)"),
    margin: float = typer.Option(0.0, help="rm-pairs: keep a pair when V(chosen) - V(rejected) > margin"),
    max_pairs_per_task: int = typer.Option(100, "--max-pairs-per-task", help="rm-pairs --pairs states: cap per task id (0: all)"),
    placeholder: str = typer.Option(PLACEHOLDER, help="openrlhf-prm: the step tag (OpenRLHF --placeholder_token)"),
    soft_labels: bool = typer.Option(False, "--soft-labels", help="openrlhf-prm: float values instead of + / -"),
    system: str = typer.Option(None, help="messages: a system message put first in every row"),
    min_visits: int = typer.Option(None, "--min-visits", help="keep tree nodes visited this often (default: the run's)"),
    seed: int = typer.Option(0, help="seed of the --max-pairs-per-task draw"),
) -> None:
    """Export a run's data: TRL stepwise PRM rows, RM pairs, OpenRLHF PRM rows or chat messages (JSONL)."""
    from agentrm_gym.train.export import export

    summary = export(run, format, out, labels=labels, threshold=threshold, step_format=step_format, pairs=pairs,
                     margin=margin, max_pairs_per_task=max_pairs_per_task, placeholder=placeholder,
                     soft_labels=soft_labels, system=system, min_visits=min_visits, seed=seed)
    extra = ""
    if "steps" in summary:
        extra = f", {summary['positive_steps']}/{summary['steps']} steps labelled good ({summary['labels']} labels)"
    typer.echo(f"wrote {summary['rows']} {format} rows to {summary['out']}{extra}")


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
