"""Text spaces for command-line style environments.

Gymnasium's :class:`~gymnasium.spaces.Text` defaults to an alphanumeric charset, so real commands
("take mug 1 from countertop 2", ``search[long lasting perfume]``) fail its ``contains``. The spaces here
accept any string up to a length and sample plausible commands: the env's admissible actions where it
can list them (like Minigrid's ``MissionSpace``), random printable text otherwise.

Vector envs. Gymnasium's ``AsyncVectorEnv`` (``gym.make_vec(..., vectorization_mode="async")``) passes
observations through shared memory by default, and its handlers for ``Text`` decode that memory once, when
the vector env is built, so every later observation read back as ``"a" * max_length`` (the same mechanism as
Gymnasium issue #1164 for ``Dict`` spaces). This module registers :class:`TextSpace` with Gymnasium's
``create_shared_memory`` / ``read_from_shared_memory`` / ``write_to_shared_memory`` (the extension point that
Gymnasium's own error messages name for custom spaces): a slot of ``max_length + 1`` int32 per env holding
the length and the code points, read through a live view (:class:`SharedTextBatch`) whose copy is the
tuple of strings that ``SyncVectorEnv`` returns. Async and sync vector envs so give the same observations,
with ``shared_memory`` on (the default) or off.
"""

from __future__ import annotations

import multiprocessing as mp
import string
import weakref
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory, write_to_shared_memory

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


# ---------------------------------------------------------------------- AsyncVectorEnv shared memory
_CODEC = "utf-32-le"  # one code point per int32 slot, as Gymnasium's own Text shared memory
_ERRORS = "surrogatepass"  # a lone surrogate in an observation survives the round trip


def _slots(shared_memory: Any, n: int, max_length: int) -> np.ndarray:
    """The ``(n, max_length + 1)`` uint32 view of a text batch's shared memory: length, then code points."""
    return np.frombuffer(shared_memory.get_obj(), dtype=np.uint32).reshape((n, max_length + 1))


class SharedTextBatch(Sequence):
    """A live view of the observations of ``n`` text envs in ``AsyncVectorEnv``'s shared memory.

    Indexing and iterating decode the current contents, so the one view that ``AsyncVectorEnv`` keeps as its
    ``observations`` follows every step. ``copy.deepcopy`` (what ``AsyncVectorEnv`` returns with
    ``copy=True``, the default) and :meth:`snapshot` give a plain ``tuple`` of ``str``, as ``SyncVectorEnv``.
    """

    def __init__(self, shared_memory: Any, n: int, max_length: int):
        self._memory = shared_memory
        self._data = _slots(shared_memory, n, max_length)

    def __len__(self) -> int:
        return int(self._data.shape[0])

    def _decode(self, i: int) -> str:
        row = self._data[i]
        length = int(row[0])
        return row[1 : 1 + length].tobytes().decode(_CODEC, _ERRORS)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self._decode(i) for i in range(len(self))[index])
        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"env index {index} out of range for {len(self)} envs")
        return self._decode(i)

    def __iter__(self) -> Iterator[str]:
        return (self._decode(i) for i in range(len(self)))

    def snapshot(self) -> tuple[str, ...]:
        """The current observations as a tuple of strings (not updated by later steps)."""
        return tuple(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return self.snapshot()

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, SharedTextBatch | tuple | list):
            return self.snapshot() == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable view

    def __repr__(self) -> str:
        return f"SharedTextBatch({self.snapshot()!r})"


@create_shared_memory.register(TextSpace)
def _create_text_shared_memory(space: TextSpace, n: int = 1, ctx: ModuleType = mp) -> Any:
    return ctx.Array(np.dtype(np.int32).char, n * (space.max_length + 1))


@read_from_shared_memory.register(TextSpace)
def _read_text_from_shared_memory(space: TextSpace, shared_memory: Any, n: int = 1) -> SharedTextBatch:
    return SharedTextBatch(shared_memory, n, space.max_length)


@write_to_shared_memory.register(TextSpace)
def _write_text_to_shared_memory(space: TextSpace, index: int, value: Any, shared_memory: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"a TextSpace observation must be a str, got {type(value).__name__}")
    if len(value) > space.max_length:
        raise ValueError(
            f"observation of {len(value)} characters exceeds the space's max_length={space.max_length}"
        )
    n = len(shared_memory) // (space.max_length + 1)
    row = _slots(shared_memory, n, space.max_length)[index]
    row[0] = len(value)
    row[1 : 1 + len(value)] = np.frombuffer(value.encode(_CODEC, _ERRORS), dtype=np.uint32)
