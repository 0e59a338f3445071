"""The ``agentrm`` command line.

Each module in this package holds one group of subcommands and a ``register(app)`` function; they are
added here in order, so a new stage only adds a module and a line to :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import importlib

import typer

from agentrm_gym.cli.groups import serve_app

app = typer.Typer(
    name="agentrm",
    help="agentrm-gym: text environments, process reward models and RM-guided search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Submodules of agentrm_gym.cli that define ``register(app)``; missing ones are skipped.
COMMAND_MODULES = ["envs", "demo", "evaluate", "serve_policy", "serve_rm", "rm", "rl", "pipeline"]

for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"agentrm_gym.cli.{_name}")
    except ModuleNotFoundError as exc:  # a stage not present in this install
        if exc.name != f"agentrm_gym.cli.{_name}":
            raise
        continue
    _module.register(app)

app.add_typer(serve_app, name="serve")


def main() -> None:
    app()
