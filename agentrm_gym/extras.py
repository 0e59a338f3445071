"""Optional-dependency checks, one place for every extra (TRL's ``is_X_available`` pattern).

* :func:`is_available` - whether a module can be imported, without importing it;
* :func:`require_extra` - import a module or raise :class:`~agentrm_gym.core.MissingExtra` whose message
  names what needs it and the ``pip install 'agentrm-gym[extra]'`` command that provides it;
* :func:`import_object` - the object a ``module:attr`` plug-in target names (policies, reward models).

Ground floor: imports nothing above :mod:`agentrm_gym.core`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from agentrm_gym.core import AgentRMGymError, MissingExtra


def is_available(module: str) -> bool:
    """Whether ``module`` (dotted names allowed) can be imported in this install."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package, or a module without a spec
        return False


def missing_modules(modules: str | Sequence[str]) -> list[str]:
    """The modules of ``modules`` that cannot be imported."""
    names = [modules] if isinstance(modules, str) else list(modules)
    return [m for m in names if not is_available(m)]


def require_extra(modules: str | Sequence[str], extra: str, what: str, hint: str = "") -> ModuleType:
    """Import ``modules`` and return the first one, or raise :class:`MissingExtra`.

    Args:
        modules: a module name or several (all are needed).
        extra: the ``agentrm-gym[...]`` extra that installs them.
        what: who needs them, the start of the message ("the vllm backend", "serving").
        hint: appended to the message (an alternative that needs nothing).
    """
    names = [modules] if isinstance(modules, str) else list(modules)
    missing = missing_modules(names)
    if missing:
        raise MissingExtra(f"{what} needs {' and '.join(missing)}: pip install 'agentrm-gym[{extra}]'{hint}")
    try:
        imported = [importlib.import_module(m) for m in names]
    except ImportError as exc:  # present but broken (a missing dependency of its own)
        raise MissingExtra(f"{what} needs {exc.name or names[0]}: pip install 'agentrm-gym[{extra}]'{hint}") from exc
    return imported[0]


class PluginNotFound(AgentRMGymError, ImportError):
    """A ``module:attr`` target (a plug-in) that cannot be imported; the message says where it came from."""


def import_object(target: str, what: str) -> Any:
    """The object ``module:attr`` names (``attr`` may be dotted, ``Class.factory``); the current directory is
    searched too, as ``uvicorn module:app`` does.

    Raises:
        PluginNotFound: a malformed target, or a module or attribute that cannot be imported (``what`` says
            where the target came from, e.g. ``"policy 'python:my_pkg:Agent'"``).
    """
    module, sep, attr = target.partition(":")
    if not (module and sep and attr):
        raise PluginNotFound(f"{what}: {target!r} is not of the form 'module:attr'")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # last: a module of the current directory never shadows an installed one
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise PluginNotFound(f"{what}: cannot import module {module!r} ({type(exc).__name__}: {exc})") from exc
    for name in attr.split("."):
        if not hasattr(obj, name):
            raise PluginNotFound(f"{what}: {module!r} has no attribute {attr!r}")
        obj = getattr(obj, name)
    return obj
