"""RM specs: :func:`make_reward_model` makes a reward model of whatever names one, for every ``--rm`` option.

A spec is one of:

* an **RM directory**, the one holding the card ``agentrm_rm.json`` (any kind:
  :func:`~agentrm_gym.rm.load_reward_model` builds the class the card's ``kind`` names);
* a **pipeline run directory**: its explicit RM ``<run>/rm`` (the one the evaluate stage uses);
* an ``http://`` / ``https://`` **URL** of ``agentrm serve rm`` (or any server with its ``/score``):
  a :class:`~agentrm_gym.rm.remote.RemoteRewardModel`;
* ``python:module:attr``: the object ``attr`` of the importable ``module`` (the current directory is also
  searched, as ``uvicorn module:app`` does), used as below;
* in Python, an object: one with ``.score(states)`` is used as is; a class, or a callable that takes no
  argument, is a factory that makes one; any other callable is a function ``state -> float``, wrapped in
  :class:`~agentrm_gym.rm.FunctionRewardModel`.

Quick start::

    from agentrm_gym import make_reward_model
    rm = make_reward_model("runs/demo")                  # the run's rm/
    rm = make_reward_model("http://127.0.0.1:8001")      # agentrm serve rm
    rm = make_reward_model("python:my_pkg.rms:DistanceRM")
    rm.score(states)
"""

from __future__ import annotations

import hashlib
import inspect
import os
from pathlib import Path
from typing import Any

from agentrm_gym.rm.base import FunctionRewardModel
from agentrm_gym.rm.card import CARD_NAME, RMLoadError
from agentrm_gym.rm.loading import import_object, load_reward_model

#: The sub-directory of a pipeline run that holds its explicit RM (the train-rm stage's output).
RUN_RM_DIR = "rm"
URL_PREFIXES = ("http://", "https://")
PYTHON_PREFIX = "python:"
#: What a spec may be, for error messages.
ACCEPTED_SPECS = ("an RM directory (holding agentrm_rm.json), a pipeline run directory (its rm/), an "
                  "http(s):// URL of `agentrm serve rm`, or python:module:attr (an object with .score(states), "
                  "a class or zero-argument factory making one, or a function state -> float)")


def is_url(spec: Any) -> bool:
    """Whether ``spec`` is an ``http(s)://`` URL (a served RM)."""
    return isinstance(spec, str) and spec.startswith(URL_PREFIXES)


def rm_dir(spec: str | os.PathLike[str]) -> Path:
    """The RM directory a path spec names: the directory itself when it holds the card, else a run's ``rm/``.

    Raises:
        RMLoadError: no such directory, or a directory that holds neither (the message lists the specs).
    """
    path = Path(spec)
    if not path.exists():
        raise RMLoadError(f"{path}: no such reward-model directory; a reward model is {ACCEPTED_SPECS}")
    if not path.is_dir():
        raise RMLoadError(f"{path}: not a directory; a reward model is {ACCEPTED_SPECS}")
    if (path / CARD_NAME).is_file():
        return path
    if (path / RUN_RM_DIR / CARD_NAME).is_file():
        return path / RUN_RM_DIR
    if (path / RUN_RM_DIR).is_dir():
        raise RMLoadError(f"{path / RUN_RM_DIR / CARD_NAME}: missing (reward-model card): the run's RM is not "
                          f"trained yet; run `agentrm pipeline train-rm --out {path}`")
    raise RMLoadError(f"{path / CARD_NAME}: missing (reward-model card): {path} is neither an RM directory nor a "
                      f"run directory with {RUN_RM_DIR}/{CARD_NAME}; a reward model is {ACCEPTED_SPECS}")


def make_reward_model(spec: Any, **overrides: Any) -> Any:
    """The reward model a spec names (see the module docstring: a directory, a URL, ``python:module:attr``,
    an object or a callable).

    Args:
        spec: the spec.
        overrides: keyword arguments of whatever the spec builds: the card kind's class (``batch_size``,
            ``max_length`` ...), :class:`~agentrm_gym.rm.remote.RemoteRewardModel` (``timeout``,
            ``api_key`` ...), or a ``python:`` class or factory (those its signature takes). An object or
            function used as is takes none (they are ignored).

    Returns:
        An object with ``.score(states) -> np.ndarray``.

    Raises:
        RMLoadError: a spec that names no reward model (the message says what is accepted), or a directory
            that cannot be loaded (the message names the file).
    """
    if isinstance(spec, str) and is_url(spec):
        from agentrm_gym.rm.remote import RemoteRewardModel

        return RemoteRewardModel(spec, **overrides)
    if isinstance(spec, str) and spec.startswith(PYTHON_PREFIX):
        return _from_object(_import_spec(spec), overrides, spec)
    if isinstance(spec, (str, os.PathLike)):
        if not os.fspath(spec):
            raise RMLoadError(f"an empty reward-model spec; a reward model is {ACCEPTED_SPECS}")
        return load_reward_model(rm_dir(spec), **overrides)
    return _from_object(spec, overrides, repr(spec))


def rm_identity(spec: str) -> str:
    """What scores cached for a spec are keyed by: a URL or ``python:`` spec as written, or a SHA-256 of the
    files of the RM directory a path names (:func:`rm_dir`)."""
    if is_url(spec) or spec.startswith(PYTHON_PREFIX):
        return spec
    digest = hashlib.sha256()
    root = rm_dir(spec)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def _import_spec(spec: str) -> Any:
    target = spec[len(PYTHON_PREFIX):]
    if ":" not in target:
        raise RMLoadError(f"{spec}: write python:module:attr (e.g. python:my_pkg.rms:DistanceRM); a reward "
                          f"model is {ACCEPTED_SPECS}")
    return import_object(target, spec)  # the current directory is searched last (extras.import_object)


def _takes_no_argument(fn: Any) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: taken for a function of a state
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)


def _accepted(fn: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides ``fn``'s signature takes."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(overrides)
    return {k: v for k, v in overrides.items() if k in params}


def _ready(obj: Any) -> bool:
    return not inspect.isclass(obj) and callable(getattr(obj, "score", None))


def _from_object(obj: Any, overrides: dict[str, Any], what: str) -> Any:
    if _ready(obj):
        return obj
    if inspect.isclass(obj) or (callable(obj) and _takes_no_argument(obj)):
        try:
            made = obj(**_accepted(obj, overrides))
        except Exception as exc:
            raise RMLoadError(f"{what}: calling {getattr(obj, '__name__', obj)!r} to make the reward model "
                              f"failed ({type(exc).__name__}: {exc})") from exc
        if _ready(made):
            return made
        if callable(made) and not inspect.isclass(made):
            return FunctionRewardModel(made)
        raise RMLoadError(f"{what}: made a {type(made).__name__}, which has no .score(states); a reward model is "
                          f"{ACCEPTED_SPECS}")
    if callable(obj):
        return FunctionRewardModel(obj)
    raise RMLoadError(f"{what}: a {type(obj).__name__} is not a reward model; a reward model is {ACCEPTED_SPECS}")
