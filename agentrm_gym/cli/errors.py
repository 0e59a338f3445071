"""How ``agentrm`` reports a failure: one line on stderr naming what was wrong and what to do, exit code 2.

:class:`AgentRMGroup` is the click group of the ``agentrm`` app. It runs the command with click's
``standalone_mode`` off and turns

* a bad command line (a missing option, a value of the wrong type, an unknown command: click's
  ``UsageError``) into ``error: agentrm eval: Missing option '--env'. See `agentrm eval --help`.``;
* the package's own errors (:class:`~agentrm_gym.core.AgentRMGymError`: an unknown task, a missing extra, an
  unreadable reward model, ...), ``ValueError`` (a bad ``--set``, an option value out of range) and
  ``OSError`` (a missing file or directory, a model that cannot be loaded) into
  ``error: <message>``;

both with exit code 2 (a ``--set field=value`` of the wrong type is a ``ValueError`` of
``PipelineConfig.override`` that names the field and its type). ``AGENTRM_DEBUG=1`` re-raises instead,
for the traceback. ``--help`` and the help shown for a group called without a command are left as they
are. The same handling applies to ``agentrm`` on the console, ``python -m agentrm_gym`` and typer's
``CliRunner`` (all go through ``main`` of this group).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click
import typer.exceptions
from typer.core import TyperGroup

try:  # recent typer raises the exceptions of its vendored copy of click
    import typer._click.exceptions as _typer_click_exceptions
except ImportError:  # pragma: no cover - typer on the system click
    _typer_click_exceptions = click.exceptions

from agentrm_gym.core import AgentRMGymError, UnknownTask

#: Errors that come from what the user typed or pointed at (the rest are bugs: they keep their traceback).
USER_ERRORS: tuple[type[BaseException], ...] = (AgentRMGymError, ValueError, OSError)

EXIT_USAGE = 2


def _both(name: str) -> tuple[type[BaseException], ...]:
    """The exception classes ``name`` of click, typer and typer's vendored click (once each)."""
    modules = (_typer_click_exceptions, typer.exceptions, click.exceptions)
    return tuple(dict.fromkeys(getattr(m, name) for m in modules if isinstance(getattr(m, name, None), type)))


NO_ARGS_IS_HELP = _both("NoArgsIsHelpError")
USAGE_ERRORS = _both("UsageError")
CLICK_ERRORS = _both("ClickException")
ABORTS = _both("Abort")


def one_line(text: str) -> str:
    """``text`` with its whitespace runs (newlines included) collapsed to single spaces."""
    return " ".join(str(text).split())


def describe(exc: BaseException) -> str:
    """The one-line message of a user error."""
    if isinstance(exc, UnknownTask):
        msg = str(exc)
        return one_line(msg if msg.lower().startswith("unknown") else f"unknown task {msg}")
    if isinstance(exc, OSError) and exc.filename and not isinstance(exc, AgentRMGymError):
        return one_line(f"{exc.filename}: {exc.strerror or exc}")
    return one_line(str(exc) or type(exc).__name__)


def usage_message(exc: Any) -> str:
    """A click usage error as ``<command path>: <message>. See `<command path> --help`.``"""
    path = exc.ctx.command_path if exc.ctx is not None else "agentrm"
    msg = one_line(exc.format_message()).rstrip(".")
    return f"{path}: {msg}. See `{path} --help`."


def report(message: str) -> None:
    click.echo(f"error: {message}", err=True)


class AgentRMGroup(TyperGroup):
    """The ``agentrm`` group: user errors become one ``error: ...`` line and exit code 2."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if prog_name is None:
            prog_name = "agentrm"  # not "python -m agentrm_gym" in messages
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        debug = os.environ.get("AGENTRM_DEBUG", "").strip() not in ("", "0")
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NO_ARGS_IS_HELP as exc:  # `agentrm` / `agentrm pipeline`: the help itself
            exc.show()
            sys.exit(exc.exit_code)
        except USAGE_ERRORS as exc:
            if debug:
                raise
            report(usage_message(exc))
            sys.exit(EXIT_USAGE)
        except CLICK_ERRORS as exc:
            if debug:
                raise
            report(one_line(exc.format_message()))
            sys.exit(EXIT_USAGE)
        except ABORTS:
            click.echo("aborted", err=True)
            sys.exit(130)
        except USER_ERRORS as exc:
            if debug:
                raise
            report(describe(exc))
            sys.exit(EXIT_USAGE)
        sys.exit(rv if isinstance(rv, int) else 0)

