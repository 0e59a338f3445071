"""Perturbation variants of every task (issue 24): a renamed action grammar, reworded goals, another example.

AgentRM's robustness test rewords ALFWorld's actions ("go to" -> "move to", "take X from Y" -> "from Y take
X") and goals. Here every task takes ``gym.make(..., perturbation=k)``:

=====  =========================================================================================
level  what changes
=====  =========================================================================================
0      nothing: the task as it is (byte-identical observations, episodes and digests)
1      the action grammar: each task's verbs and templates renamed by its :class:`Perturbation`
2      the goals: ``info["goal"]`` (and its copy in observations) paraphrased, same target
3      1 + 2
4      1 + 2 + another one-shot example (``PromptBuilder(perturbation=4)``: a different train task's
       oracle trajectory, played in the perturbed grammar; see :mod:`agentrm_gym.agents.prompts`)
=====  =========================================================================================

How. It is a translation layer around a task's own hooks, not an edit of its simulator. A task names its
table in :meth:`~agentrm_gym.core.TextEnv.perturbation_table` (a :class:`Perturbation`: renames, the old
grammar's aliases, phrase rules for observations and the instruction, goal paraphrase rules).
:func:`install_hooks` (run by ``TextEnv.__init_subclass__`` for every task class) wraps the hooks
``_load_task``, ``_step``, ``admissible_actions``, ``expert_action`` and ``instruction``:

* in: a renamed command is mapped back to the original grammar before the task's parser sees it; an
  old-grammar command (one a rename retired) is refused with the task's own answer to a command it cannot
  parse (``_step("")``) or its table's ``reject``, ``action_valid`` False; anything else passes unchanged;
* out: admissible actions and the expert's action are renamed, observations and the instruction rewritten
  by the phrase rules, the goal paraphrased (also where an observation repeats it, e.g. ALFWorld's
  "Your task is to: ...", WebShop's search page).

Only the outermost call translates: a hook called from inside the task's own code (WebShop's invalid
message listing ``admissible_actions()``, ToolQuery's expert reusing ``expert_action()``) sees the original
grammar, so simulators, oracles, progress and success are untouched. Snapshots store the agent's
(renamed) commands, so replay and native restore both work. At level 0 the hooks call straight through.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentrm_gym.core import StepOutcome, TextEnv

#: The levels of the ``perturbation`` kwarg and what each changes.
LEVELS: dict[int, str] = {
    0: "original wording",
    1: "renamed action grammar",
    2: "reworded goals",
    3: "renamed grammar + reworded goals",
    4: "renamed grammar + reworded goals + another one-shot example",
}
#: Hooks whose results are translated at the outermost call.
TRANSLATED_HOOKS = ("_load_task", "_step", "admissible_actions", "expert_action", "instruction")
#: Hooks that only mark "inside the task's own code" (anything they call sees the original grammar).
GUARDED_HOOKS = ("_progress", "_success", "oracle_value", "distance_to_goal", "_get_state", "_set_state")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_MEMO_LIMIT = 200_000


def check_level(level: Any) -> int:
    """``level`` as an int in 0..4.

    Raises:
        ValueError: anything else (the message lists the levels).
    """
    try:
        value = operator.index(level) if not isinstance(level, bool) else None
    except TypeError:
        value = None
    if value not in LEVELS:
        raise ValueError(f"perturbation must be an int in 0..4, got {level!r}; levels: {_levels_text()}")
    return int(value)


def _levels_text() -> str:
    return ", ".join(f"{k} = {v}" for k, v in LEVELS.items())


def renames_grammar(level: int) -> bool:
    """Whether ``level`` renames the action grammar (1, 3, 4)."""
    return level in (1, 3, 4)


def rewords_goals(level: int) -> bool:
    """Whether ``level`` paraphrases the goals (2, 3, 4)."""
    return level >= 2


def changes_example(level: int) -> bool:
    """Whether ``level`` uses another one-shot example (4)."""
    return level == 4


# ----------------------------------------------------------------------------------------- templates
def template_regex(template: str) -> re.Pattern[str]:
    """A command template as a regex: ``{name}`` placeholders match any text (lazily), literal words
    case-insensitively, runs of spaces any whitespace; the whole command must match."""
    parts, at = [], 0
    for m in _PLACEHOLDER.finditer(template):
        parts.append(_literal(template[at:m.start()]))
        parts.append(f"(?P<{m.group(1)}>.*?)")
        at = m.end()
    parts.append(_literal(template[at:]))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _literal(text: str) -> str:
    return r"\s+".join(re.escape(w) for w in text.split(" ")) if text else ""


def _first_word(template: str) -> str | None:
    """The literal first word of a template (its index key), ``None`` when it starts with a placeholder."""
    head = template.split(" ", 1)[0]
    return None if "{" in head else head.lower()


@dataclass(frozen=True)
class Rename:
    """One command form of the original grammar and its renamed form, as templates with ``{placeholders}``
    (``Rename("take {obj} from {recep}", "from {recep} take {obj}")``); both name the same placeholders."""

    original: str
    perturbed: str

    def __post_init__(self) -> None:
        if sorted(_PLACEHOLDER.findall(self.original)) != sorted(_PLACEHOLDER.findall(self.perturbed)):
            raise ValueError(f"Rename {self.original!r} -> {self.perturbed!r}: the placeholders differ")


#: A phrase rule: a regex and its replacement (a ``re.sub`` template or a function of the match).
Phrase = tuple[str, Any]


class _Side:
    """Regexes of one side of a list of renames, indexed by first word (SciWorld lists 3,000 commands)."""

    def __init__(self, templates: Sequence[str]):
        self.patterns = [template_regex(t) for t in templates]
        self.index: dict[str | None, list[int]] = {}
        for i, t in enumerate(templates):
            self.index.setdefault(_first_word(t), []).append(i)

    def match(self, command: str) -> tuple[int, dict[str, str]] | None:
        words = command.split(None, 1)
        first = words[0].lower() if words else ""
        for i in sorted(self.index.get(first, []) + self.index.get(None, [])):
            m = self.patterns[i].fullmatch(command)
            if m is not None:
                return i, m.groupdict()
        return None


class Perturbation:
    """A task's perturbation table: its renamed grammar and goal paraphrases (see the module docstring).

    Args:
        renames: ``(original, perturbed)`` template pairs, most specific first (the first match wins).
        retired: templates of old-grammar aliases the task also accepts (ALFWorld's ``put X in Y``); like
            every renamed form they are refused at levels >= 1.
        observation_phrases: ``(regex, replacement)`` rules for observations where they mention commands
            (help text, invalid-action messages). A regex with a group named ``command`` has that group
            renamed as a command instead; one named ``commands`` as a list (split at ", " and " / ").
        instruction_phrases: the same for the task's instruction (its action grammar).
        goal_rules: ``(regex, replacement)`` paraphrases of the goal, applied in order.
        goal_frame: the goal when no rule changed it (``{goal}`` is the original), so that levels 2-4
            always reword.
        action_rules: ``(regex, replacement)`` rules for admissible actions that quote the goal (WebShop's
            suggested search), applied at the levels that reword goals, before renaming.
        reject: ``reject(env, command) -> observation`` for a refused old-grammar command (the default is
            the task's own answer to a command it cannot parse, ``_step("")``, then the phrase rules).
    """

    def __init__(self, renames: Iterable[tuple[str, str]], *, retired: Iterable[str] = (),
                 observation_phrases: Iterable[Phrase] = (), instruction_phrases: Iterable[Phrase] = (),
                 goal_rules: Iterable[Phrase] = (), goal_frame: str = "Your goal: {goal}",
                 action_rules: Iterable[Phrase] = (), reject: Callable[[TextEnv, str], str] | None = None):
        self.renames = tuple(Rename(o, p) for o, p in renames)
        self.retired = tuple(retired)
        self.observation_phrases = tuple((re.compile(p), r) for p, r in observation_phrases)
        self.instruction_phrases = tuple((re.compile(p), r) for p, r in instruction_phrases)
        self.goal_rules = tuple((re.compile(p), r) for p, r in goal_rules)
        self.goal_frame = goal_frame
        self.action_rules = tuple((re.compile(p), r) for p, r in action_rules)
        self.reject = reject
        self._original = _Side([r.original for r in self.renames])
        self._perturbed = _Side([r.perturbed for r in self.renames])
        self._old = _Side(list(self.retired))
        self._forward: dict[str, str] = {}

    # ------------------------------------------------------------------------------------- commands
    def forward(self, command: str) -> str:
        """An original-grammar command in the renamed grammar (unchanged when no rename matches)."""
        hit = self._forward.get(command)
        if hit is None:
            m = self._original.match(command)
            hit = command if m is None else self._fill(self.renames[m[0]].perturbed, m[1])
            if len(self._forward) >= _MEMO_LIMIT:
                self._forward.clear()
            self._forward[command] = hit
        return hit

    def backward(self, command: str) -> str | None:
        """A renamed command in the original grammar; ``None`` for an old-grammar command (refused);
        anything else unchanged (commands the table does not rename, garbage: the task judges them)."""
        m = self._perturbed.match(command)
        if m is not None:
            return self._fill(self.renames[m[0]].original, m[1])
        if self._original.match(command) is not None or self._old.match(command) is not None:
            return None
        return command

    def is_old_grammar(self, command: str) -> bool:
        """Whether ``command`` is a form the renames retired (refused at levels >= 1)."""
        return self.backward(command) is None

    @staticmethod
    def _fill(template: str, values: dict[str, str]) -> str:
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)

    # ----------------------------------------------------------------------------------------- text
    def observation(self, text: str) -> str:
        """An observation with its command mentions in the renamed grammar."""
        return self._rewrite(text, self.observation_phrases)

    def instruction(self, text: str) -> str:
        """The instruction with its action grammar renamed."""
        return self._rewrite(text, self.instruction_phrases)

    def _rewrite(self, text: str, phrases: Sequence[tuple[re.Pattern[str], Any]]) -> str:
        for pattern, repl in phrases:
            if "command" in pattern.groupindex or "commands" in pattern.groupindex:
                text = pattern.sub(self._rename_groups, text)
            else:
                text = pattern.sub(repl, text)
        return text

    def _rename_groups(self, m: re.Match[str]) -> str:
        name = "command" if "command" in m.re.groupindex else "commands"
        start, end = m.span(name)
        inner = m.group(name)
        if name == "command":
            renamed = self.forward(inner)
        else:
            pieces = re.split(r"(, | / )", inner)
            renamed = "".join(p if i % 2 else self.forward(p) for i, p in enumerate(pieces))
        s = m.start()
        return m.group(0)[: start - s] + renamed + m.group(0)[end - s:]

    def reword_goal(self, goal: str) -> str:
        """The goal paraphrased: the rules in order, else the frame (never the same text)."""
        text = goal
        for pattern, repl in self.goal_rules:
            text = pattern.sub(repl, text)
        return text if text != goal else self.goal_frame.format(goal=goal)


# ------------------------------------------------------------------------------- per-env translation
class PerturbationState:
    """What a perturbed env keeps: its level, the depth of hook calls, the current goal and its paraphrase."""

    def __init__(self, level: int):
        self.level = level
        self.renamed = renames_grammar(level)
        self.reworded = rewords_goals(level)
        self.depth = 0
        self.goal = ""
        self.goal_out = ""

    def observation(self, table: Perturbation, text: str) -> str:
        """``text`` as the agent sees it: command mentions renamed outside the goal, the goal reworded."""
        if not isinstance(text, str):
            return text
        pieces = text.split(self.goal) if self.goal and len(self.goal) >= 8 else [text]
        if self.renamed:
            pieces = [table.observation(p) for p in pieces]
        return (self.goal_out if self.reworded else self.goal).join(pieces)


def _table(env: TextEnv) -> Perturbation:
    table = env.perturbation_table()
    if table is None:
        raise ValueError(f"{env.task_name} has no perturbation table (perturbation_table()); use perturbation=0")
    return table


def _load_task(env: TextEnv, state: PerturbationState, fn: Callable[..., Any], task_id: str) -> tuple[str, str]:
    goal, obs = fn(env, task_id)
    table = _table(env)
    state.goal = goal
    state.goal_out = table.reword_goal(goal) if state.reworded and goal else goal
    return state.goal_out, state.observation(table, obs)


def _step(env: TextEnv, state: PerturbationState, fn: Callable[..., Any], action: str) -> StepOutcome:
    table = _table(env)
    command = table.backward(action) if state.renamed else action
    if command is None:
        if table.reject is not None:
            from agentrm_gym.core import StepOutcome

            return StepOutcome(table.reject(env, action), valid=False)
        outcome = fn(env, "")  # the task's own answer to a command it cannot parse
        return replace(outcome, observation=state.observation(table, outcome.observation), valid=False,
                       terminal=False)
    outcome = fn(env, command)
    return replace(outcome, observation=state.observation(table, outcome.observation))


def _admissible(env: TextEnv, state: PerturbationState, fn: Callable[..., Any]) -> list[str] | None:
    acts = fn(env)
    if acts is None:
        return acts
    table = _table(env)
    if state.reworded and table.action_rules:
        acts = [table._rewrite(a, table.action_rules) for a in acts]
    return [table.forward(a) for a in acts] if state.renamed else acts


def _expert(env: TextEnv, state: PerturbationState, fn: Callable[..., Any]) -> str | None:
    action = fn(env)
    return _table(env).forward(action) if action is not None and state.renamed else action


def _instruction(env: TextEnv, state: PerturbationState, fn: Callable[..., Any]) -> str:
    text = fn(env)
    return _table(env).instruction(text) if state.renamed else text


_TRANSLATE: dict[str, Callable[..., Any]] = {"_load_task": _load_task, "_step": _step,
                                             "admissible_actions": _admissible, "expert_action": _expert,
                                             "instruction": _instruction}


def _hook(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    translate = _TRANSLATE.get(name)

    @functools.wraps(fn)
    def hook(self: TextEnv, *args: Any, **kwargs: Any) -> Any:
        state = self.__dict__.get("_perturbation_state")
        if state is None or state.depth:  # level 0, or called from inside the task's own code
            return fn(self, *args, **kwargs)
        state.depth += 1
        try:
            if translate is None:
                return fn(self, *args, **kwargs)
            return translate(self, state, fn, *args, **kwargs)
        finally:
            state.depth -= 1

    hook.__agentrm_perturbation_hook__ = True  # type: ignore[attr-defined]
    return hook


def install_hooks(cls: type) -> None:
    """Wrap a task class's hooks (its own or inherited from a mixin) with the translation layer; idempotent.
    ``TextEnv``'s own defaults stay as they are (they return nothing to translate, and
    :func:`~agentrm_gym.core.has_oracle_hooks` tells an overridden oracle hook by identity)."""
    from agentrm_gym.core import TextEnv

    for name in (*TRANSLATED_HOOKS, *GUARDED_HOOKS):
        fn = getattr(cls, name, None)
        if fn is None or fn is getattr(TextEnv, name) or getattr(fn, "__agentrm_perturbation_hook__", False):
            continue
        setattr(cls, name, _hook(name, fn))


# ------------------------------------------------------------------------------ shared table helpers
def word_renames(words: dict[str, str]) -> list[Phrase]:
    """Phrase rules replacing whole words (longest first, so that "toggle and go through" beats "toggle")."""
    return [(rf"\b{re.escape(old)}\b", new) for old, new in sorted(words.items(), key=lambda kv: -len(kv[0]))]
