"""Words for PDDL facts and actions: AgentBoard-style phrasing for the four known domains, generic otherwise.

AgentBoard's PDDL tasks show the state as sentences ("b1 is on the table.", "Robot arm is empty.",
"The b1 is clear.") and take actions as lower-case words with arguments ("pickup b1", "stack b1 b2",
"left grasp shot1"). A :class:`Renderer` does this for one domain *family*, picked from the domain's
name (blocks, gripper, barman, tyre). A predicate is phrased by its family's template only when its name
and arity match; any other predicate reads ``"on-top(a, b) is true."`` and any action
``"<action-name> <args>"``.
"""

from __future__ import annotations

from collections.abc import Sequence

#: family -> {(predicate, arity): template}; ``{0}``, ``{1}`` are the arguments.
FACT_TEMPLATES: dict[str, dict[tuple[str, int], str]] = {
    "blocks": {
        ("on", 2): "{0} is on {1}.",
        ("on-table", 1): "{0} is on the table.",
        ("ontable", 1): "{0} is on the table.",
        ("clear", 1): "The {0} is clear.",
        ("arm-empty", 0): "Robot arm is empty.",
        ("handempty", 0): "Robot arm is empty.",
        ("holding", 1): "You are holding {0}.",
    },
    "gripper": {
        ("room", 1): "{0} is a room.",
        ("ball", 1): "{0} is a ball.",
        ("gripper", 1): "{0} is a gripper.",
        ("at-robby", 1): "Robby is at {0}.",
        ("at", 2): "{0} is at {1}.",
        ("free", 1): "{0} is free.",
        ("carry", 2): "{1} is carrying {0}.",
    },
    "barman": {
        ("ontable", 1): "{0} is on the table.",
        ("holding", 2): "{0} is holding {1}.",
        ("handempty", 1): "{0} hand is empty.",
        ("empty", 1): "{0} is empty.",
        ("contains", 2): "{0} contains {1}.",
        ("clean", 1): "{0} is clean.",
        ("used", 2): "{0} is used with {1}.",
        ("dispenses", 2): "{0} dispenses {1}.",
        ("shaker-empty-level", 2): "{0} is at empty level {1}.",
        ("shaker-level", 2): "{0} is at level {1}.",
        ("next", 2): "level {0} is next to level {1}.",
        ("unshaked", 1): "{0} is unshaked.",
        ("shaked", 1): "{0} is shaked.",
        ("cocktail-part1", 2): "{0} part1 ingredient is {1}.",
        ("cocktail-part2", 2): "{0} part2 ingredient is {1}.",
    },
    "tyreworld": {
        ("open", 1): "{0} is open.",
        ("closed", 1): "{0} is closed.",
        ("have", 1): "You have {0}.",
        ("in", 2): "{0} is in {1}.",
        ("loose", 2): "The nut {0} on the hub {1} is loose.",
        ("tight", 2): "The nut {0} on the hub {1} is tight.",
        ("unlocked", 1): "{0} is unlocked.",
        ("on-ground", 1): "Hub {0} is on the ground.",
        ("not-on-ground", 1): "Hub {0} is not on the ground.",
        ("inflated", 1): "Wheel {0} is inflated.",
        ("not-inflated", 1): "Wheel {0} is not inflated.",
        ("fastened", 1): "Hub {0} is fastened.",
        ("unfastened", 1): "Hub {0} is unfastened.",
        ("free", 1): "Hub {0} is free.",
        ("on", 2): "{0} is on {1}.",
        ("intact", 1): "Wheel {0} is intact.",
    },
}

#: family -> action names written with their first argument before the name ("left grasp shot1").
HAND_FIRST_ACTIONS: dict[str, frozenset[str]] = {"barman": frozenset({"grasp", "leave"})}


def domain_family(domain_name: str) -> str | None:
    """The known family of a domain name (``"blocks"``, ``"gripper"``, ``"barman"``, ``"tyreworld"``)."""
    name = domain_name.lower()
    if "block" in name:
        return "blocks"
    if "gripper" in name:
        return "gripper"
    if "barman" in name:
        return "barman"
    if "tyre" in name or "tire" in name:
        return "tyreworld"
    return None


class Renderer:
    """Turns facts and actions of one domain into text.

    Args:
        domain_name: the ``(domain ...)`` name; it picks the phrasing family.
    """

    def __init__(self, domain_name: str):
        self.family = domain_family(domain_name)
        self._facts = FACT_TEMPLATES.get(self.family or "", {})
        self._hand_first = HAND_FIRST_ACTIONS.get(self.family or "", frozenset())

    def fact(self, predicate: str, args: Sequence[str], negated: bool = False) -> str:
        """One fact as a sentence ending in a full stop; ``negated`` for negative goal literals."""
        template = self._facts.get((predicate, len(args)))
        if template is not None:
            text = template.format(*args)
        elif args:
            text = f"{predicate}({', '.join(args)}) is true."
        else:
            text = f"{predicate} is true."
        if negated:
            return f"It is not the case that {text[0].lower()}{text[1:]}"
        return text

    def action(self, name: str, args: Sequence[str]) -> str:
        """One ground action as the command an agent types, e.g. ``"stack b1 b2"``."""
        if name in self._hand_first and args:
            return " ".join([args[0], name, *args[1:]])
        return " ".join([name, *args])


def sentence_case(text: str) -> str:
    """Capitalise the first character only (object names keep their case)."""
    return text[:1].upper() + text[1:]
