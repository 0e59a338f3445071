"""The ``agentrm`` command line (thin: the work is done by the library).

::

    agentrm envs | play | eval | demo | baselines | table | ppo | export | report
    agentrm pipeline expert | sft | explore | extract | train-rm | evaluate | all
    agentrm rm train | eval | rescore
    agentrm serve policy | rm | env

Each module in this package holds some commands and a ``register(app)`` function that adds them to the
app or to their group (:mod:`agentrm_gym.cli.groups`); every name is fixed by its module, none depends on
the order of :data:`COMMAND_MODULES`. A user error (bad arguments, an unknown task, a missing directory, a
bad ``--set``) is printed as one ``error: ...`` line with exit code 2 (:mod:`agentrm_gym.cli.errors`).
"""

from __future__ import annotations

import importlib

import typer

from agentrm_gym.cli.errors import AgentRMGroup
from agentrm_gym.cli.groups import GROUPS

app = typer.Typer(
    name="agentrm",
    help="agentrm-gym: text environments, process reward models and RM-guided search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=AgentRMGroup,  # user errors: one `error: ...` line, exit code 2 (agentrm_gym.cli.errors)
)

#: Submodules of agentrm_gym.cli that define ``register(app)``; each is imported (none is optional).
COMMAND_MODULES = ["envs", "demo", "evaluate", "serve_policy", "serve_rm", "serve_env", "rm", "rl", "rl_policy",
                   "pipeline",
                   "export", "report", "analyze"]

for _name in COMMAND_MODULES:
    importlib.import_module(f"agentrm_gym.cli.{_name}").register(app)

for _group, _typer in GROUPS:
    app.add_typer(_typer, name=_group)


def main() -> None:
    """The console entry point: the app, whose group (:class:`AgentRMGroup`) reports user errors in one line."""
    app(prog_name="agentrm")
