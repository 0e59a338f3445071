"""The sub-command groups of ``agentrm``: ``pipeline <stage>``, ``rm train|eval|rescore``,
``serve policy|rm|env``."""

from __future__ import annotations

import typer

pipeline_app = typer.Typer(
    help="The AgentRM pipeline over one run directory: its stages one by one, or `all` of them.",
    no_args_is_help=True,
)
rm_app = typer.Typer(help="Reward models outside the pipeline (oracle-label training, RMB metrics, offline re-scoring).",
                     no_args_is_help=True)
serve_app = typer.Typer(help="HTTP servers: an OpenAI-compatible policy, a reward model, the envs (OpenEnv).",
                        no_args_is_help=True)

#: (name, group) of every group, added to the app by :mod:`agentrm_gym.cli`.
GROUPS = [("pipeline", pipeline_app), ("rm", rm_app), ("serve", serve_app)]
