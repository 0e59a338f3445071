"""PDDL parsing: domain and problem text (read by the ``pddl`` package) compiled to lifted STRIPS.

The supported fragment is what the classical IPC benchmarks of AgentBoard use: STRIPS with ``:typing``
(``either`` types included), domain constants, negative preconditions and (in)equality in
preconditions, conjunctive goals of positive or negative literals. ``(increase (total-cost) ...)``
effects and numeric initial values are ignored (every action costs 1). Anything else (disjunctions,
quantifiers, conditional effects, derived predicates) raises :class:`UnsupportedPDDL` naming the
construct; text the parser rejects raises :class:`PDDLParseError`. The result is a :class:`Domain` of
:class:`ActionSchema` s and a :class:`Problem`, which :mod:`~agentrm_gym.envs.pddl.engine` grounds.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pddl.logic.base import And, Not
from pddl.logic.functions import FunctionExpression
from pddl.logic.predicates import EqualTo, Predicate
from pddl.logic.terms import Constant, Variable

from agentrm_gym.core import AgentRMGymError

#: A fact: ``(predicate, arg1, arg2, ...)`` in lower case.
Fact = tuple[str, ...]
#: A schema atom: predicate and terms; variables keep their ``?`` prefix.
Atom = tuple[str, tuple[str, ...]]


class UnsupportedPDDL(AgentRMGymError, ValueError):
    """A PDDL construct outside the STRIPS fragment this engine handles (the message names it)."""


class PDDLParseError(AgentRMGymError, ValueError):
    """A PDDL file that the ``pddl`` parser rejects (the message carries the parser's reason)."""


_PARSERS: dict[str, Any] = {}


def _parser(kind: str) -> Any:
    # Building the LALR parser takes ~0.3 s; one instance per process parses a problem in milliseconds.
    if kind not in _PARSERS:
        if kind == "domain":
            from pddl.parser.domain import DomainParser

            _PARSERS[kind] = DomainParser()
        else:
            from pddl.parser.problem import ProblemParser

            _PARSERS[kind] = ProblemParser()
    return _PARSERS[kind]


def _parse(kind: str, text: str) -> Any:
    # the pddl parser sets sys.tracebacklimit = 0 while parsing and may leave it there on errors
    old = getattr(sys, "tracebacklimit", None)
    try:
        # PDDL is case-insensitive but the parser's keywords are lower case (IPC 2000 files are upper case)
        return _parser(kind)(text.lower())
    except Exception as exc:  # lark raises several exception types; all mean "not valid PDDL here"
        raise PDDLParseError(f"cannot parse the PDDL {kind}: {exc}") from exc
    finally:
        if old is None:
            if hasattr(sys, "tracebacklimit"):
                del sys.tracebacklimit
        else:
            sys.tracebacklimit = old


def _name(x: Any) -> str:
    return str(x.name if hasattr(x, "name") else x).lower()


def _term(t: Any) -> str:
    if isinstance(t, Variable):
        return "?" + str(t.name).lower()
    if isinstance(t, Constant):
        return str(t.name).lower()
    raise UnsupportedPDDL(f"unsupported term {t!r} (only variables and objects)")


def _types_of(term: Any) -> tuple[str, ...]:
    tags = sorted(str(t).lower() for t in (getattr(term, "type_tags", None) or ()))
    return tuple(tags) or ("object",)


def _conjuncts(formula: Any) -> list[Any]:
    if formula is None:
        return []
    if isinstance(formula, And):
        out: list[Any] = []
        for op in formula.operands:
            out.extend(_conjuncts(op))
        return out
    return [formula]


def _atom(p: Predicate) -> Atom:
    return _name(p), tuple(_term(t) for t in p.terms)


@dataclass(frozen=True)
class ActionSchema:
    """A lifted STRIPS action.

    Attributes:
        name: the action name (lower case).
        params: parameter variables (``"?x"``).
        param_types: for each parameter, the types an object may have (``either`` gives several).
        pre: positive preconditions; ``pre_neg``: negative ones.
        equal / not_equal: ``(= ?x ?y)`` and ``(not (= ?x ?y))`` constraints.
        add / delete: the effects.
    """

    name: str
    params: tuple[str, ...]
    param_types: tuple[tuple[str, ...], ...]
    pre: tuple[Atom, ...]
    pre_neg: tuple[Atom, ...]
    equal: tuple[tuple[str, str], ...]
    not_equal: tuple[tuple[str, str], ...]
    add: tuple[Atom, ...]
    delete: tuple[Atom, ...]


def _compile_action(action: Any) -> ActionSchema:
    where = f"action {action.name!r}"
    pre: list[Atom] = []
    pre_neg: list[Atom] = []
    equal: list[tuple[str, str]] = []
    not_equal: list[tuple[str, str]] = []
    for lit in _conjuncts(action.precondition):
        if isinstance(lit, Predicate):
            pre.append(_atom(lit))
        elif isinstance(lit, EqualTo):
            equal.append((_term(lit.left), _term(lit.right)))
        elif isinstance(lit, Not) and isinstance(lit.argument, Predicate):
            pre_neg.append(_atom(lit.argument))
        elif isinstance(lit, Not) and isinstance(lit.argument, EqualTo):
            not_equal.append((_term(lit.argument.left), _term(lit.argument.right)))
        else:
            raise UnsupportedPDDL(f"{where}: precondition {lit} is not a STRIPS literal")
    add: list[Atom] = []
    delete: list[Atom] = []
    for lit in _conjuncts(action.effect):
        if isinstance(lit, Predicate):
            add.append(_atom(lit))
        elif isinstance(lit, Not) and isinstance(lit.argument, Predicate):
            delete.append(_atom(lit.argument))
        elif isinstance(lit, FunctionExpression):
            continue  # (increase (total-cost) 1): unit costs
        else:
            raise UnsupportedPDDL(f"{where}: effect {lit} is not a STRIPS add or delete (no conditional effects)")
    params = tuple("?" + str(p.name).lower() for p in action.parameters)
    return ActionSchema(
        name=str(action.name).lower(),
        params=params,
        param_types=tuple(_types_of(p) for p in action.parameters),
        pre=tuple(pre),
        pre_neg=tuple(pre_neg),
        equal=tuple(equal),
        not_equal=tuple(not_equal),
        add=tuple(add),
        delete=tuple(delete),
    )


@dataclass(frozen=True)
class Domain:
    """A lifted STRIPS domain.

    Attributes:
        name: the domain name (lower case).
        types: type -> parent type (``None`` for a root); ``object`` is implicit.
        constants: constant -> its types.
        actions: the action schemas, sorted by name.
    """

    name: str
    types: dict[str, str | None]
    constants: dict[str, tuple[str, ...]]
    actions: tuple[ActionSchema, ...]

    @classmethod
    def from_text(cls, text: str) -> Domain:
        """Parse and compile a PDDL domain."""
        d = _parse("domain", text)
        if getattr(d, "derived_predicates", None):
            raise UnsupportedPDDL(f"domain {d.name!r}: derived predicates are not supported")
        types = {str(k).lower(): (str(v).lower() if v is not None else None) for k, v in dict(d.types).items()}
        constants = {_name(c): _types_of(c) for c in d.constants}
        actions = tuple(sorted((_compile_action(a) for a in d.actions), key=lambda a: a.name))
        return cls(name=str(d.name).lower(), types=types, constants=constants, actions=actions)

    @classmethod
    def from_file(cls, path: str | Path) -> Domain:
        """Read, parse and compile a PDDL domain file."""
        return cls.from_text(Path(path).read_text())


@dataclass(frozen=True)
class Problem:
    """A PDDL problem: objects, initial facts and a conjunctive goal."""

    name: str
    domain_name: str
    objects: dict[str, tuple[str, ...]]
    init: frozenset[Fact]
    goal_pos: tuple[Fact, ...]
    goal_neg: tuple[Fact, ...]

    @classmethod
    def from_text(cls, text: str) -> Problem:
        """Parse and compile a PDDL problem."""
        p = _parse("problem", text)
        objects = {_name(o): _types_of(o) for o in p.objects}
        init: set[Fact] = set()
        for item in p.init:
            if isinstance(item, Predicate):
                init.add((_name(item), *(_term(t) for t in item.terms)))
            elif isinstance(item, EqualTo | FunctionExpression):
                continue  # numeric fluents such as (= (total-cost) 0)
            else:
                raise UnsupportedPDDL(f"problem {p.name!r}: initial fact {item} is not a ground atom")
        goal_pos: list[Fact] = []
        goal_neg: list[Fact] = []
        for lit in _conjuncts(p.goal):
            if isinstance(lit, Predicate):
                goal_pos.append((_name(lit), *(_term(t) for t in lit.terms)))
            elif isinstance(lit, Not) and isinstance(lit.argument, Predicate):
                goal_neg.append((_name(lit.argument), *(_term(t) for t in lit.argument.terms)))
            else:
                raise UnsupportedPDDL(f"problem {p.name!r}: goal {lit} is not a conjunction of literals")
        return cls(
            name=str(p.name).lower(),
            domain_name=str(p.domain_name).lower(),
            objects=objects,
            init=frozenset(init),
            goal_pos=tuple(dict.fromkeys(goal_pos)),
            goal_neg=tuple(dict.fromkeys(goal_neg)),
        )

    @classmethod
    def from_file(cls, path: str | Path) -> Problem:
        """Read, parse and compile a PDDL problem file."""
        return cls.from_text(Path(path).read_text())

