"""TensorBoard event files: the one writer helper of every trainer, pipeline stage and evaluation.

* :func:`summary_writer` - a ``SummaryWriter`` in a directory (torch's, else tensorboardX's), or ``None``
  with a one-time warning when neither can write: the caller skips its scalars and its run goes on;
* :func:`tensorboard_available` - the same check, for a library that opens its own writer (stable-baselines3's
  ``tensorboard_log``).

tensorboard is optional: it comes with the ``[rl]`` and ``[report]`` extras, not with ``[llm]``.
Ground floor: imports nothing above :mod:`agentrm_gym.core` and :mod:`agentrm_gym.extras`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from agentrm_gym.extras import is_available

MISSING = ("TensorBoard logs are off: tensorboard is not installed "
           "(pip install tensorboard, or pip install 'agentrm-gym[rl]')")
_warned = False


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(MISSING, RuntimeWarning, stacklevel=3)


def tensorboard_available(warn: bool = True) -> bool:
    """Whether torch's ``SummaryWriter`` can write here (tensorboard and torch installed).

    Args:
        warn: warn once per process when it cannot.
    """
    if is_available("tensorboard") and is_available("torch"):
        return True
    if warn:
        _warn_once()
    return False


def summary_writer(logdir: str | Path) -> Any:
    """A TensorBoard ``SummaryWriter`` writing to ``logdir``, or ``None`` (one warning a process) without one.

    torch's writer when tensorboard and torch are installed, else tensorboardX's when that is; both take
    ``add_scalar(tag, value, step)``, ``add_text`` and ``close``. Callers check ``writer is not None`` before logging.
    """
    if tensorboard_available(warn=False):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard present but broken (a missing dependency of its own)
            pass
        else:
            return SummaryWriter(str(logdir))
    if is_available("tensorboardX"):
        from tensorboardX import SummaryWriter  # type: ignore[no-redef]

        return SummaryWriter(str(logdir))
    _warn_once()
    return None
