"""Sub-command groups shared by several CLI modules (``agentrm serve policy|rm``)."""

from __future__ import annotations

import typer

serve_app = typer.Typer(help="HTTP servers: an OpenAI-compatible policy, a reward model.", no_args_is_help=True)
