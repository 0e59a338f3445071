"""The STRIPS engine: a parsed PDDL domain and problem grounded into a task with fast successor generation.

A state is a ``frozenset`` of fact ids (ints); :class:`Task` interns facts, grounds the actions once
(static-predicate pruning plus relaxed reachability from the initial state) and caches the applicable
actions of every state it is asked about. It also words states, goals and actions (through
:class:`~agentrm_gym.envs.pddl.render.Renderer`) and reads commands back to ground actions. Parsing
lives in :mod:`~agentrm_gym.envs.pddl.parser`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentrm_gym.envs.pddl.parser import ActionSchema, Atom, Domain, Fact, Problem, UnsupportedPDDL
from agentrm_gym.envs.pddl.render import Renderer, sentence_case

State = frozenset[int]

GOAL_PREFIX = "The goal is to satisfy the following conditions: "
_TOKEN = re.compile(r"[a-z0-9_][a-z0-9_\-]*")
_APPLICABLE_CACHE_LIMIT = 200_000


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
