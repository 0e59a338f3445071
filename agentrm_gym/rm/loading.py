"""Loading a saved reward model: the kind -> class table :data:`RM_KINDS` and :func:`load_reward_model`.

A saved RM directory holds the card ``agentrm_rm.json``; its ``kind`` names the class that rebuilds the
model, looked up in :data:`RM_KINDS` (``kind -> "module:Class"``, imported only when a model of that kind is
loaded). The built-in kinds are ``value``, ``pooled_value``, ``implicit`` and ``judge``. A package adds its
own kind with :func:`register_rm_kind`, or, so that a saved directory of that kind loads wherever
``--rm DIR`` is taken without importing the package first, with an entry point in the group
:data:`ENTRY_POINT_GROUP`::

    [project.entry-points."agentrm_gym.rm_kinds"]
    my_kind = "my_package.rm:MyRewardModel"

The contract of a kind's class (every built-in class follows it):

* a classmethod ``load(path, card, fmt, meta, **overrides) -> RewardModel``, where ``path`` is the
  directory (:class:`~pathlib.Path`), ``card`` the whole card, ``fmt`` its :class:`~agentrm_gym.rm.RMFormat`,
  ``meta`` the card's fields other than the ones every card has (kind, format, versions, backbone,
  max_length, beta, aggregate) and ``overrides`` the caller's constructor arguments (``batch_size`` ...);
  it raises :class:`~agentrm_gym.rm.RMLoadError` naming the file at fault;
* ``save(path)`` that writes the files and the card (:func:`~agentrm_gym.rm.card.write_card` with
  ``self.card()``, whose ``kind`` is the registered name); a subclass of
  :class:`~agentrm_gym.rm.RewardModel` setting the class attribute ``kind`` gets ``card()`` for free.

The variant modules do not import this one, so nothing here is imported back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentrm_gym.rm.card import CARD_NAME, RMLoadError, check_kind, read_card
from agentrm_gym.rm.format import RMFormat

#: The entry-point group that installed packages declare their RM kinds in (name: the card's ``kind``).
ENTRY_POINT_GROUP = "agentrm_gym.rm_kinds"

#: The card's ``kind`` -> the class that loads it (``"module:Class"``, or the class itself).
RM_KINDS: dict[str, str | type] = {
    "value": "agentrm_gym.rm.value:ValueRewardModel",
    "pooled_value": "agentrm_gym.rm.pooled:PooledValueRewardModel",
    "implicit": "agentrm_gym.rm.implicit:ImplicitRewardModel",
    "judge": "agentrm_gym.rm.judge:JudgeRewardModel",
}

#: Card fields every kind shares (passed in ``card``, left out of ``meta``).
CARD_FIELDS = ("kind", "format", "header_version", "card_version", "backbone", "max_length", "beta", "aggregate")


def register_rm_kind(kind: str, target: str | type, *, replace: bool = False) -> None:
    """Add a reward-model kind: a saved directory whose card says ``"kind": kind`` loads with ``target``.

    Args:
        kind: the card's ``kind`` (the class's ``kind`` attribute, so that its ``card()`` writes it).
        target: the class, or ``"module:Class"`` (imported when a model of this kind is first loaded); it
            follows the contract in this module's docstring (a ``load(path, card, fmt, meta, **overrides)``
            classmethod).
        replace: allow replacing a kind already registered to another class.

    Raises:
        ValueError: an empty kind, a string target not of the form ``module:Class``, or a kind already
            registered to another class (without ``replace``).
        TypeError: a class without a ``load`` classmethod.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"an RM kind is a non-empty string, got {kind!r}")
    if isinstance(target, str):
        module, sep, attr = target.partition(":")
        if not (module and sep and attr):
            raise ValueError(f"RM kind {kind!r}: target {target!r} is not of the form 'module:Class'")
    elif not callable(getattr(target, "load", None)):
        raise TypeError(f"RM kind {kind!r}: {target!r} has no load(path, card, fmt, meta, **overrides) classmethod")
    held = RM_KINDS.get(kind)
    if held is not None and held != target and not replace:
        raise ValueError(f"RM kind {kind!r} is already registered to {held!r}; pass replace=True to replace it")
    RM_KINDS[kind] = target


def import_object(target: str, what: str) -> Any:
    """The object ``module:attr`` names (:func:`agentrm_gym.extras.import_object`).

    Raises:
        RMLoadError: a malformed target, or a module or attribute that cannot be imported (``what`` says
            where the target came from).
    """
    from agentrm_gym.extras import PluginNotFound
    from agentrm_gym.extras import import_object as _import

    try:
        return _import(target, what)
    except PluginNotFound as exc:
        raise RMLoadError(str(exc)) from exc


def _entry_point_kind(kind: str) -> str | None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == kind:
            return ep.value
    return None


def rm_class(kind: str, where: str | Path = "") -> type:
    """The class that loads RMs of ``kind`` (:data:`RM_KINDS`, then the :data:`ENTRY_POINT_GROUP` entry points).

    Raises:
        RMLoadError: an unknown kind (the message lists the known ones), or a class that cannot be imported.
    """
    where = str(where or f"RM kind {kind!r}")
    target = RM_KINDS.get(kind)
    if target is None:
        found = _entry_point_kind(kind)
        if found is None:
            raise RMLoadError(f"{where}: unknown reward-model kind {kind!r} (known: {', '.join(RM_KINDS)}; a "
                              "package adds one with agentrm_gym.rm.register_rm_kind or an entry point in "
                              f"{ENTRY_POINT_GROUP!r})")
        target = RM_KINDS[kind] = found
    cls = import_object(target, f"{where} (kind {kind!r})") if isinstance(target, str) else target
    if not callable(getattr(cls, "load", None)):
        raise RMLoadError(f"{where}: {cls!r}, the class of kind {kind!r}, has no load(path, card, fmt, meta, "
                          "**overrides) classmethod")
    return cls


def load_reward_model(path: str | Path, **overrides: Any) -> Any:
    """Load a saved reward model with the class its card's ``kind`` names in :data:`RM_KINDS`.

    :func:`~agentrm_gym.rm.make_reward_model` takes this and every other RM spec (a run directory, a URL,
    ``python:module:attr``).

    Args:
        path: the directory written by ``rm.save()`` / a trainer.
        overrides: constructor arguments to change (``batch_size``, ``max_length`` ...).

    Raises:
        RMLoadError: a missing or corrupted card, config, weights or tokenizer file (named in the message), an
            unknown kind, or a card whose ``kind`` does not match the directory's files.
    """
    path = Path(path)
    card = read_card(path)
    kind = card["kind"]
    if not isinstance(kind, str):
        raise RMLoadError(f"{path / CARD_NAME}: corrupted reward-model card ('kind' is {kind!r}, not a name)")
    check_kind(path, kind)  # the files must be a model of the card's kind (a value model is no judge)
    try:
        fmt = RMFormat.from_dict(card.get("format"))
    except (TypeError, ValueError) as exc:
        raise RMLoadError(f"{path / CARD_NAME}: {exc}") from exc
    meta = {k: v for k, v in card.items() if k not in CARD_FIELDS}
    return rm_class(kind, path / CARD_NAME).load(path, card, fmt, meta, **overrides)
