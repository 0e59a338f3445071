"""Optional-dependency checks, one place for every extra (TRL's ``is_X_available`` pattern).

* :func:`is_available` - whether a module can be imported, without importing it;
* :func:`require_extra` - import a module or raise :class:`~agentrm_gym.core.MissingExtra` whose message
  names what needs it and the ``pip install 'agentrm-gym[extra]'`` command that provides it.

Ground floor: imports nothing above :mod:`agentrm_gym.core`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from types import ModuleType

from agentrm_gym.core import MissingExtra


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
