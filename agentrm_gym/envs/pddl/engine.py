"""A STRIPS engine: PDDL domain and problem (parsed by the ``pddl`` package) to a grounded task.

The supported fragment is what the classical IPC benchmarks of AgentBoard use: STRIPS with ``:typing``
(``either`` types included), domain constants, negative preconditions and (in)equality in
preconditions, conjunctive goals of positive or negative literals. ``(increase (total-cost) ...)``
effects and numeric initial values are ignored (every action costs 1). Anything else (disjunctions,
quantifiers, conditional effects, derived predicates) raises :class:`UnsupportedPDDL` naming the
construct.

A state is a ``frozenset`` of fact ids (ints); :class:`Task` interns facts, grounds the actions once
(static-predicate pruning plus relaxed reachability from the initial state) and caches the applicable
actions of every state it is asked about.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pddl.logic.base import And, Not
from pddl.logic.functions import FunctionExpression
from pddl.logic.predicates import EqualTo, Predicate
from pddl.logic.terms import Constant, Variable

from agentrm_gym.core import AgentRMGymError
from agentrm_gym.envs.pddl.render import Renderer, sentence_case

#: A fact: ``(predicate, arg1, arg2, ...)`` in lower case.
Fact = tuple[str, ...]
#: A schema atom: predicate and terms; variables keep their ``?`` prefix.
Atom = tuple[str, tuple[str, ...]]
State = frozenset[int]

GOAL_PREFIX = "The goal is to satisfy the following conditions: "
_TOKEN = re.compile(r"[a-z0-9_][a-z0-9_\-]*")
_APPLICABLE_CACHE_LIMIT = 200_000


class UnsupportedPDDL(AgentRMGymError, ValueError):
    """A PDDL construct outside the STRIPS fragment this engine handles (the message names it)."""


class PDDLParseError(AgentRMGymError, ValueError):
    """A PDDL file that the ``pddl`` parser rejects (the message carries the parser's reason)."""


# ---------------------------------------------------------------------------------------------- parsing
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


@dataclass(frozen=True)
class GroundAction:
    """A ground action: preconditions and effects over fact ids, and its command text."""

    index: int
    name: str
    args: tuple[str, ...]
    text: str
    pre: frozenset[int]
    pre_neg: frozenset[int]
    add: frozenset[int]
    delete: frozenset[int]


class Task:
    """A grounded STRIPS task with cached successor generation.

    Args:
        domain: the compiled domain.
        problem: the compiled problem (its objects together with the domain's constants).
        renderer: the phrasing of facts and actions (default: chosen from the domain name).
    """

    def __init__(self, domain: Domain, problem: Problem, renderer: Renderer | None = None):
        self.domain = domain
        self.problem = problem
        self.renderer = renderer or Renderer(domain.name)
        self.objects: dict[str, tuple[str, ...]] = {**domain.constants, **problem.objects}
        self.facts: list[Fact] = []
        self.fact_ids: dict[Fact, int] = {}
        self.init: State = frozenset(self._intern(f) for f in sorted(problem.init))
        self.goal_pos: frozenset[int] = frozenset(self._intern(f) for f in problem.goal_pos)
        self.goal_neg: frozenset[int] = frozenset(self._intern(f) for f in problem.goal_neg)
        self.actions: list[GroundAction] = self._ground()
        self.by_signature = {(a.name, a.args): a.index for a in self.actions}
        self.by_text = {a.text: a.index for a in self.actions}
        self.arity = {s.name: len(s.params) for s in domain.actions}
        self._fact_text: dict[int, str] = {}
        self._applicable: dict[State, tuple[int, ...]] = {}
        self._texts: dict[State, list[str]] = {}
        self.planner_cache: Any = None  # the planner attaches its per-task caches here

    @classmethod
    def from_files(cls, domain_file: str | Path, problem_file: str | Path) -> Task:
        """Load a task from a domain file and a problem file."""
        return cls(Domain.from_file(domain_file), Problem.from_file(problem_file))

    # ------------------------------------------------------------------ grounding
    def _intern(self, fact: Fact) -> int:
        fid = self.fact_ids.get(fact)
        if fid is None:
            fid = len(self.facts)
            self.facts.append(fact)
            self.fact_ids[fact] = fid
        return fid

    def _objects_by_type(self) -> dict[str, list[str]]:
        def ancestors(t: str) -> list[str]:
            out, seen = [t], {t}
            while (parent := self.domain.types.get(out[-1])) and parent not in seen:
                out.append(parent)
                seen.add(parent)
            return [*out, "object"]

        by_type: dict[str, set[str]] = {}
        for obj, tags in self.objects.items():
            for tag in tags:
                for t in ancestors(tag):
                    by_type.setdefault(t, set()).add(obj)
        return {t: sorted(objs) for t, objs in by_type.items()}

    def _ground(self) -> list[GroundAction]:
        fluent = {atom[0] for s in self.domain.actions for atom in (*s.add, *s.delete)}
        static_facts = {f for f in self.problem.init if f[0] not in fluent}
        by_type = self._objects_by_type()
        # candidates: (schema, args, pre, pre_neg, add, delete) over fact ids
        candidates: list[tuple[ActionSchema, tuple[str, ...], frozenset[int], frozenset[int], frozenset[int],
                               frozenset[int]]] = []
        for schema in self.domain.actions:
            position = {p: i for i, p in enumerate(schema.params)}
            pre = self._templates([a for a in schema.pre if a[0] in fluent], position)
            pre_neg = self._templates([a for a in schema.pre_neg if a[0] in fluent], position)
            add = self._templates(schema.add, position)
            delete = self._templates(schema.delete, position)
            for args in self._bindings(schema, by_type, fluent, static_facts):
                candidates.append((
                    schema, args, self._ground_atoms(pre, args), self._ground_atoms(pre_neg, args),
                    self._ground_atoms(add, args), self._ground_atoms(delete, args),
                ))
        # relaxed reachability: keep the actions whose fluent preconditions can ever hold together
        reached = set(self.init)
        kept = [False] * len(candidates)
        changed = True
        while changed:
            changed = False
            for i, c in enumerate(candidates):
                if not kept[i] and c[2] <= reached:
                    kept[i] = changed = True
                    reached |= c[4]
        actions: list[GroundAction] = []
        for (schema, args, pre, pre_neg, add, delete), keep in zip(candidates, kept, strict=True):
            if keep:
                text = self.renderer.action(schema.name, args)
                actions.append(GroundAction(len(actions), schema.name, args, text, pre, pre_neg, add, delete))
        return actions

    @staticmethod
    def _templates(atoms: Sequence[Atom], position: dict[str, int]) -> list[tuple[str, tuple[int | str, ...]]]:
        """Atoms with each variable replaced by its parameter index (constants stay strings)."""
        out = []
        for pred, terms in atoms:
            if any(t.startswith("?") and t not in position for t in terms):
                raise UnsupportedPDDL(f"predicate {pred!r} uses a variable that is not an action parameter")
            out.append((pred, tuple(position[t] if t.startswith("?") else t for t in terms)))
        return out

    def _ground_atoms(self, templates: list[tuple[str, tuple[int | str, ...]]], args: tuple[str, ...]) -> frozenset[int]:
        ids = []
        for pred, spec in templates:
            fact = (pred, *[args[i] if isinstance(i, int) else i for i in spec])
            fid = self.fact_ids.get(fact)
            ids.append(self._intern(fact) if fid is None else fid)
        return frozenset(ids)

    def _bindings(
        self, schema: ActionSchema, by_type: dict[str, list[str]], fluent: set[str], static: set[Fact]
    ) -> Iterable[tuple[str, ...]]:
        params = schema.params
        position = {p: i for i, p in enumerate(params)}

        def last_var(terms: Sequence[str]) -> int:
            return max((position.get(t, -1) for t in terms if t.startswith("?")), default=-1)

        # each check fires as soon as its last variable is bound (static pruning during the search)
        checks: list[list[tuple[str, Any]]] = [[] for _ in range(len(params) + 1)]
        for pred, terms in schema.pre:
            if pred not in fluent:
                checks[last_var(terms) + 1].append(("pos", (pred, terms)))
        for pred, terms in schema.pre_neg:
            if pred not in fluent:
                checks[last_var(terms) + 1].append(("neg", (pred, terms)))
        for a, b in schema.equal:
            checks[last_var((a, b)) + 1].append(("eq", (a, b)))
        for a, b in schema.not_equal:
            checks[last_var((a, b)) + 1].append(("neq", (a, b)))
        domains = []
        for types in schema.param_types:
            objs: set[str] = set()
            for t in types:
                objs.update(by_type.get(t, ()))
            domains.append(sorted(objs))
        binding: dict[str, str] = {}

        def value(t: str) -> str:
            return binding[t] if t.startswith("?") else t

        def passes(level: int) -> bool:
            for kind, data in checks[level]:
                if kind in ("pos", "neg"):
                    pred, terms = data
                    holds = (pred, *(value(t) for t in terms)) in static
                    if holds != (kind == "pos"):
                        return False
                else:
                    same = value(data[0]) == value(data[1])
                    if same != (kind == "eq"):
                        return False
            return True

        if any(t.startswith("?") and t not in position for _, terms in (*schema.pre, *schema.add) for t in terms):
            raise UnsupportedPDDL(f"action {schema.name!r} uses a variable that is not a parameter")
        if not passes(0):
            return

        def extend(k: int) -> Iterable[tuple[str, ...]]:
            if k == len(params):
                yield tuple(binding[p] for p in params)
                return
            for obj in domains[k]:
                binding[params[k]] = obj
                if passes(k + 1):
                    yield from extend(k + 1)
            binding.pop(params[k], None)

        yield from extend(0)

    # ------------------------------------------------------------------ dynamics
    def applicable(self, state: State) -> tuple[int, ...]:
        """Indices of the actions applicable in ``state`` (cached per state)."""
        cached = self._applicable.get(state)
        if cached is None:
            cached = tuple(
                a.index for a in self.actions if a.pre <= state and not (a.pre_neg and a.pre_neg & state)
            )
            if len(self._applicable) >= _APPLICABLE_CACHE_LIMIT:
                self._applicable.clear()
            self._applicable[state] = cached
        return cached

    def is_applicable(self, state: State, index: int) -> bool:
        a = self.actions[index]
        return a.pre <= state and not (a.pre_neg & state)

    def apply(self, state: State, index: int) -> State:
        """The successor of ``state`` under action ``index`` (delete effects first, then adds)."""
        a = self.actions[index]
        return (state - a.delete) | a.add

    def is_goal(self, state: State) -> bool:
        return self.goal_pos <= state and not (self.goal_neg & state)

    def goal_fraction(self, state: State) -> float:
        """The fraction of goal literals that hold in ``state`` (AgentBoard's progress rate)."""
        total = len(self.goal_pos) + len(self.goal_neg)
        if total == 0:
            return 1.0
        done = len(self.goal_pos & state) + len(self.goal_neg - state)
        return done / total

    # ------------------------------------------------------------------ text
    def parse_action(self, text: str) -> int | None:
        """The ground action a command names, or ``None``.

        Exact command text ("stack b1 b2") is matched first; otherwise, like AgentBoard, the first word
        that is an action name and the object names that follow it in order ("Stack b1 on b2.") are used,
        and the number of objects must equal the action's arity.
        """
        words = text.lower().strip().rstrip(".").split()
        index = self.by_text.get(" ".join(words))
        if index is not None:
            return index
        tokens = _TOKEN.findall(" ".join(words))
        name_at = next((i for i, tok in enumerate(tokens) if tok in self.arity), None)
        if name_at is None:
            return None
        name = tokens[name_at]
        args = tuple(tok for i, tok in enumerate(tokens) if i != name_at and tok in self.objects)
        if len(args) != self.arity[name]:
            return None
        return self.by_signature.get((name, args))

    def fact_text(self, fid: int, negated: bool = False) -> str:
        if negated:
            fact = self.facts[fid]
            return self.renderer.fact(fact[0], fact[1:], negated=True)
        text = self._fact_text.get(fid)
        if text is None:
            fact = self.facts[fid]
            text = self._fact_text[fid] = self.renderer.fact(fact[0], fact[1:])
        return text

    def state_text(self, state: State) -> str:
        """The true facts of ``state`` as sorted sentences ("B1 is on b2. Robot arm is empty. ...")."""
        return " ".join(sorted(sentence_case(self.fact_text(f)) for f in state))

    def goal_text(self) -> str:
        """"The goal is to satisfy the following conditions: b1 is on b2., b2 is on b3." (AgentBoard)."""
        parts = [self.fact_text(f) for f in self.goal_pos] + [self.fact_text(f, negated=True) for f in self.goal_neg]
        return GOAL_PREFIX + ", ".join(sorted(parts))

    def action_texts(self, state: State) -> list[str]:
        """The commands applicable in ``state``, in grounding order (cached per state)."""
        texts = self._texts.get(state)
        if texts is None:
            texts = [self.actions[i].text for i in self.applicable(state)]
            if len(self._texts) >= _APPLICABLE_CACHE_LIMIT:
                self._texts.clear()
            self._texts[state] = texts
        return texts
