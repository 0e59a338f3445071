"""Text spaces for command-line style environments.

Gymnasium's :class:`~gymnasium.spaces.Text` defaults to an alphanumeric charset, so real commands
("take mug 1 from countertop 2", ``search[long lasting perfume]``) fail its ``contains``. The spaces here
accept any string up to a length and sample plausible commands: the env's admissible actions where it
can list them (like Minigrid's ``MissionSpace``), random printable text otherwise.
"""

from __future__ import annotations

import string
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " "


class TextSpace(spaces.Text):
    """Any ``str`` of at most ``max_length`` characters (unicode included).

    ``sample()`` draws random printable text, which is how ``check_env`` probes robustness.
    """

    def __init__(self, max_length: int = 1_000_000, min_length: int = 0, seed: int | None = None):
        super().__init__(max_length=max_length, min_length=min_length, charset=PRINTABLE, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        length = int(self.np_random.integers(1, 24))
        chars = self.np_random.choice(list(PRINTABLE), size=length)
        return "".join(chars)

    def __repr__(self) -> str:
        return f"TextSpace(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, TextSpace) and other.max_length == self.max_length


class CommandSpace(TextSpace):
    """The action space of a text env: any string, sampled from the current admissible actions.

    Args:
        provider: returns the admissible actions of the current state, or ``None`` when they are unknown.
            Held through a weak reference when it is a bound method, so the space never keeps its env
            alive and stays picklable (the provider is dropped on pickling).
        vocabulary: fallback commands sampled when no admissible list is available.
    """

    def __init__(
        self,
        provider: Callable[[], Sequence[str] | None] | None = None,
        vocabulary: Sequence[str] = (),
        max_length: int = 10_000,
        seed: int | None = None,
    ):
        super().__init__(max_length=max_length, seed=seed)
        self.vocabulary = list(vocabulary)
        self._provider: Any = None
        if provider is not None:
            self.set_provider(provider)

    def set_provider(self, provider: Callable[[], Sequence[str] | None]) -> None:
        if hasattr(provider, "__self__"):
            self._provider = weakref.WeakMethod(provider)  # type: ignore[arg-type]
        else:
            self._provider = lambda: provider

    def admissible(self) -> list[str] | None:
        if self._provider is None:
            return None
        fn = self._provider()
        if fn is None:
            return None
        try:
            acts = fn()
        except Exception:  # the env may not be reset yet
            return None
        return list(acts) if acts else None

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        choices = self.admissible() or self.vocabulary
        if choices:
            return str(choices[int(self.np_random.integers(len(choices)))])
        return super().sample()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_provider"] = None
        return state

    def __deepcopy__(self, memo: dict[int, Any]) -> CommandSpace:
        new = CommandSpace(vocabulary=self.vocabulary, max_length=self.max_length)
        new._provider = self._provider
        new._np_random = None if self._np_random is None else np.random.Generator(
            type(self._np_random.bit_generator)()
        )
        if self._np_random is not None:
            new._np_random.bit_generator.state = self._np_random.bit_generator.state
        return new

    def __repr__(self) -> str:
        return "CommandSpace()"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, CommandSpace)
