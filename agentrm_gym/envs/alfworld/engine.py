"""A fast driver of TextWorld's PDDL runtime for ALFWorld games.

It runs the same pieces as ``textworld.envs.pddl.PddlEnv`` with ALFWorld's ``AlfredDemangler`` naming
(fast-downward's C state for the dynamics and applicable actions, ``GameLogic`` and its
context-sensitive grammar for the text), with three changes that make it usable for search:

* **Compiled games are reused.** The PDDL -> SAS translation (0.1-1 s a game) is done once per game file
  and cached next to it (``<game>.sas.pkl``); ``PddlEnv`` translates twice per ``load`` and again per
  ``reset``. The grammar's logic is parsed once per process.
* **Admissible commands are formatted directly** from the applicable operators ("take {o} from {r}" with
  the objects' names) instead of deriving each command template through the grammar, which costs
  ~20 ms a command; feedback text still comes from the grammar, whose rule parses are memoised.
* **Native snapshots.** The state is the value of every SAS variable plus the derived fact set; restoring
  reloads the (already translated) SAS task with that state as its initial state (~1 ms), so ``reset``
  and ``restore`` never replay actions.
"""

from __future__ import annotations

import copy
import json
import pickle
import re
from collections import Counter, defaultdict
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

#: TextWorld's banner, which ALFWorld's agents (and AgentBoard) strip from the first observation.
BANNER = "-= Welcome to TextWorld, ALFRED! =-"
_TASK_RULE = re.compile(r'("task"\s*:\s*\[\s*\{\s*"rhs"\s*:\s*")(.*?)("\s*\}\s*\])', re.S)
COMPILED_VERSION = 1


def _patch_grammar_parser() -> None:
    """Memoise TextWorld's grammar-rule parser (a pure function of its text; tatsu parses are slow)."""
    from textworld.envs.pddl import textgen

    if getattr(textgen, "_agentrm_memoised", False):
        return
    original = textgen._parse_and_convert
    cache: dict[tuple, Any] = {}

    def parse_and_convert(text: str, rule_name: str = "symbols", **kwargs: Any) -> Any:
        key = (text, rule_name, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = original(text, rule_name=rule_name, **kwargs)
        return copy.deepcopy(cache[key])

    textgen._parse_and_convert = parse_and_convert
    # grammar conditions ("{...|condition}" and rule conditions) are parsed by textworld.logic's own parser
    # on every derivation (two thirds of a step's time); the parsed Rule is only read (all_assignments)
    textgen.Rule = type("Rule", (), {"parse_conjunctive_query": staticmethod(
        lru_cache(maxsize=None)(textgen.Rule.parse_conjunctive_query))})
    # every derivation step copies its context with two deep copies; the grammar only ever updates the copied
    # dicts (``query`` adds a clause's bindings) and never the entities, variables and placeholders in them,
    # so copying the two dicts is the same derivation for a fraction of the cost
    textgen.copy_context = _copy_context
    textgen._agentrm_memoised = True


def _copy_context(context: dict[str, Any]) -> dict[str, Any]:
    """TextWorld's ``copy_context`` with the variables and mapping dicts copied one level deep."""
    return {"state": context["state"], "facts": context["facts"], "variables": dict(context["variables"]),
            "mapping": dict(context["mapping"]), "entity_infos": context["entity_infos"]}


@cache
def _shared(base: type) -> type:
    """``base`` (a slotted TextWorld value class) made to deep-copy to itself.

    TextWorld's grammar deep-copies every derivation context (the entities' infos and the action's
    placeholder -> variable mapping) about twenty times per feedback text, which was most of a step's
    time. These objects are never modified after ``load`` (the grammar only updates the copied dicts),
    so sharing them gives the same text.
    """
    name = "Shared" + base.__name__
    cls = type(name, (base,), {"__slots__": (), "__deepcopy__": lambda self, memo: self,
                               "__module__": __name__, "__qualname__": name})
    globals()[name] = cls  # so that pickle finds it
    return cls


def _shared_mapping(mapping: dict[Any, Any]) -> dict[Any, Any]:
    """An action's placeholder -> variable mapping with both sides :func:`_shared`."""
    from textworld.logic import Placeholder, Variable

    placeholder, variable = _shared(Placeholder), _shared(Variable)
    return {placeholder(ph.name, ph.type): variable(var.name, var.type) for ph, var in mapping.items()}


def task_text_of_grammar(grammar: str) -> str:
    """The text of a game grammar's ``task`` rule ("Your task is to: ...")."""
    m = _TASK_RULE.search(grammar)
    return m.group(2).encode().decode("unicode_escape") if m else ""


@lru_cache(maxsize=8)
def _game_logic(domain: str, neutral_grammar: str) -> Any:
    from textworld.envs.pddl.logic import GameLogic

    return GameLogic(domain=domain, grammar=neutral_grammar)


def compile_game(data: dict[str, Any]) -> tuple[Any, str]:
    """Translate a game's PDDL to fast-downward's SAS: ``(task, sas text)``."""
    import fast_downward

    task, sas = fast_downward.pddl2sas(data["pddl_domain"], data["pddl_problem"])
    return task, sas


def load_compiled(game_path: Path, data: dict[str, Any]) -> tuple[Any, str]:
    """The SAS translation of a game file, from its cache file when fresh, else translated and cached."""
    cache = game_path.with_name(game_path.name + ".sas.pkl")
    try:
        if cache.stat().st_mtime >= game_path.stat().st_mtime:
            version, task, sas = pickle.loads(cache.read_bytes())
            if version == COMPILED_VERSION:
                return task, sas
    except (OSError, ValueError, pickle.UnpicklingError, EOFError, TypeError):
        pass
    task, sas = compile_game(data)
    try:
        tmp = cache.with_name(f".{cache.name}.{id(task)}.tmp")
        tmp.write_bytes(pickle.dumps((COMPILED_VERSION, task, sas)))
        tmp.replace(cache)
    except OSError:  # a read-only game folder: keep the translation in memory only
        pass
    return task, sas


def _split_sas(sas: str) -> tuple[str, list[list[str]], str, str]:
    """(text before the initial state, each variable's value names, the state block, text after it)."""
    head, rest = sas.split("begin_state\n", 1)
    block, tail = rest.split("end_state\n", 1)
    variables: list[list[str]] = []
    for chunk in head.split("begin_variable\n")[1:]:
        lines = chunk.split("end_variable\n", 1)[0].splitlines()
        variables.append(lines[3:3 + int(lines[2])])
    return head, variables, block, tail


class AlfredEngine:
    """One ALFWorld game at a time on TextWorld's PDDL runtime (see the module docstring)."""

    def __init__(self) -> None:
        import fast_downward

        _patch_grammar_parser()
        self._lib = fast_downward.load_lib()
        self.game_path: Path | None = None
        self.state: Any = None
        self._logic: Any = None
        self._entity_infos: dict[str, Any] = {}
        self.names: dict[str, str] = {}
        self.task_text = ""
        self._commands: dict[str, Any] = {}
        self.admissible: list[str] = []
        self._initial: Any = None
        self.intro = ""

    # ------------------------------------------------------------------ loading
    def load(self, game_path: Path) -> None:
        """Load a ``.tw-pddl`` game (a no-op when it is already loaded)."""
        from alfworld.agents.utils.misc import Demangler
        from textworld.envs.pddl.logic import PddlState
        from textworld.generator.game import EntityInfo

        game_path = Path(game_path)
        if self.game_path == game_path and self._initial is not None:
            return
        data = json.loads(game_path.read_text())
        task, sas = load_compiled(game_path, data)
        grammar = data["grammar"]
        self.task_text = task_text_of_grammar(grammar)
        neutral = _TASK_RULE.sub(lambda m: m.group(1) + "Your task is to: UNKNOWN GOAL." + m.group(3), grammar)
        self._logic = _game_logic(data["pddl_domain"], neutral)

        ps = PddlState.__new__(PddlState)
        ps._facts = defaultdict(set)
        ps._vars_by_name = {}
        ps._vars_by_type = defaultdict(set)
        ps._var_counts = Counter()
        ps._logic = self._logic
        ps.downward_lib = self._lib
        ps.pddl_problem = data["pddl_problem"]
        ps.task, ps.sas, ps.sas_replan = task, sas, None
        ps._actions = {a.name: a for a in task.actions}
        ps.name2type = {o.name: o.type_name for o in task.objects}
        import textworld.logic

        for type_ in task.types:
            try:
                self._logic.types.add(textworld.logic.Type(type_.name, type_.supertype_names))
            except ValueError:  # already known (the logic is shared between games)
                pass
        self._sas_head, self._sas_vars, _, self._sas_tail = _split_sas(sas)
        self._lib.load_sas(sas.encode("utf-8"))
        init_facts = []
        from fast_downward.translate.pddl import conditions

        for atom in task.init:
            if isinstance(atom, conditions.Atom) and atom.predicate != "=":
                init_facts.append(self._proposition(atom.predicate, atom.args, ps.name2type))
        ps.add_facts(init_facts)
        var_atoms = self._state_atoms()
        dynamic = set()
        for values in self._sas_vars:
            for v in values:
                if v.startswith("Atom ") or v.startswith("NegatedAtom "):
                    dynamic.add(self._atom_fact(v, ps.name2type).name.removeprefix("not_"))
        ps.add_facts([self._atom_fact(a, ps.name2type) for a in var_atoms if a.startswith("Atom ")])
        self.state = ps
        # the true facts of predicates no SAS variable changes: the same all game (``facts`` adds the others)
        self._static_facts = [(f.name, tuple(v.name for v in f.arguments)) for f in ps.facts
                              if not f.is_negation and f.name not in dynamic]
        self._dynamic_names = dynamic

        infos = {}
        for fact in ps.facts:
            for v in fact.arguments:
                infos[v.name] = EntityInfo(v.name, v.type)
        for info in infos.values():
            info.name, info.definite, info.indefinite = info.id, "the", "a"
        demangler = Demangler(game_infos=infos)
        shared = _shared(EntityInfo)
        for info in infos.values():
            info.name = demangler.demangle_alfred_name(info.id)
            info.__class__ = shared
        self._entity_infos = infos
        self.names = {k: v.name for k, v in infos.items()}
        self.game_path = game_path
        self._refresh()
        intro = self._derive("#intro#", {}, {})
        intro = intro.replace(BANNER, "").strip()
        if self.task_text:
            intro = intro.replace("Your task is to: UNKNOWN GOAL.", self.task_text)
        self.intro = intro
        self._initial = self.get_state()

    @staticmethod
    def _proposition(name: str, args: Any, name2type: dict[str, str]) -> Any:
        from textworld.logic import Proposition, Variable

        return Proposition(name, [Variable(a, name2type[a]) for a in args])

    def _atom_fact(self, atom_name: str, name2type: dict[str, str]) -> Any:
        kind, rest = atom_name.split(" ", 1)
        pred, args = rest.split("(", 1)
        arg_list = [a for a in args[:-1].split(", ") if a]
        prop = self._proposition(pred, arg_list, name2type)
        return prop.negate() if kind == "NegatedAtom" else prop

    def _state_atoms(self) -> list[str]:
        from textworld.envs.pddl.logic import Atom

        n = self._lib.get_state_size()
        atoms = (Atom * n)()
        self._lib.get_state(atoms)
        return [a.name for a in atoms]

    # ------------------------------------------------------------------ playing
    def _derive(self, rule: str, variables: dict[str, Any], mapping: dict[str, Any]) -> str:
        context = {
            "state": self.state,
            "facts": list(self.state.facts),
            "variables": variables,
            "mapping": mapping,
            "entity_infos": self._entity_infos,
        }
        return self._logic.grammar.derive(rule, context)

    def _refresh(self) -> None:
        """Recompute the applicable actions and their command strings."""
        commands: dict[str, Any] = {}
        for action in self.state.all_applicable_actions():
            names = {ph.name: self.names[var.name] for ph, var in action.mapping.items()}
            template = "go to {r}" if action.name == "gotolocation" else self._logic.actions[action.name].template
            try:
                command = template.format(**names)
            except (KeyError, IndexError):
                continue
            commands.setdefault(command, action)
        self._commands = commands
        self.admissible = sorted(commands)

    def reset(self) -> str:
        """Back to the game's initial state; returns the intro text (room and task)."""
        self.set_state(self._initial)
        return self.intro

    def step(self, command: str) -> str | None:
        """Apply an admissible command and return its feedback, or ``None`` when it is not admissible."""
        action = self._commands.get(command)
        if action is None:
            return None
        self.state.apply(action)
        variables = {ph.name: self._entity_infos[var.name] for ph, var in action.mapping.items()}
        feedback = self._derive(action.feedback_rule, variables, _shared_mapping(action.mapping))
        self._refresh()
        return feedback

    @property
    def won(self) -> bool:
        return bool(self._lib.check_goal())

    def facts(self) -> list[tuple[str, tuple[str, ...]]]:
        """The current true facts as ``(predicate, (entity ids...))`` (negations excluded).

        Facts of predicates no SAS variable changes are those of ``load``; only the others are read.
        """
        dynamic = self._dynamic_names
        return self._static_facts + [
            (f.name, tuple(v.name for v in f.arguments))
            for sig, group in self.state._facts.items() if sig.name in dynamic for f in group
        ]

    # ------------------------------------------------------------------ snapshots
    def get_state(self) -> tuple[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]]:
        """A picklable state: the SAS variable values and the dynamic facts of the fact set."""
        dynamic = tuple(sorted(
            (f.name, tuple(v.name for v in f.arguments)) for f in self.state.facts
            if f.name.removeprefix("not_") in self._dynamic_names
        ))
        return tuple(self._state_atoms()), dynamic

    def set_state(self, snapshot: Any) -> None:
        """Restore a :meth:`get_state` value by reloading the SAS task with it as the initial state."""
        from textworld.logic import Proposition, Variable

        atoms, dynamic = snapshot
        values = [str(vals.index(a)) for vals, a in zip(self._sas_vars, atoms, strict=True)]
        sas = self._sas_head + "begin_state\n" + "\n".join(values) + "\nend_state\n" + self._sas_tail
        self._lib.load_sas(sas.encode("utf-8"))
        ps = self.state
        n2t = ps.name2type
        current = [f for f in ps.facts if f.name.removeprefix("not_") in self._dynamic_names]
        ps.remove_facts(current)
        ps.add_facts([Proposition(name, [Variable(a, n2t[a]) for a in args]) for name, args in dynamic])
        self._refresh()
