"""ScienceWorld: the ``scienceworld`` simulator (a Scala jar driven over py4j) with AgentBoard's settings.

One JVM per env, started on the first ``reset`` and stopped by ``close()``, by garbage collection and
at interpreter exit. Every call into the JVM runs in a worker thread with a timeout, so a hung
simulator raises :class:`SimulatorTimeout` (naming the command) instead of freezing the run.

The simulator is made a function of (task, variation, simplifications, commands sent since ``load``), so
that seeded runs, replay snapshots and gold paths cached on disk agree: the JVM runs with constant
identity hashes (:data:`JVM_OPTIONS`), and read-only queries (the valid-action list, which draws from
Scala's global random generator) put that generator's seed back (:meth:`ScienceWorldSimulator.query`).
Valid-action lists are cached per state.

The test split is 90 fixed (task, variation) episodes from ScienceWorld's *test* variations, chosen so
that the simulator's gold path finishes the task within the 30-step limit (see :data:`TEST_EPISODES`).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from agentrm_gym.cache import cache_dir
from agentrm_gym.core import AgentRMGymError, MissingExtra, StepOutcome, TextEnv, UnknownTask

T = TypeVar("T")

#: AgentBoard's simplifications (the spelling ``ScienceWorldEnv.load`` accepts).
SIMPLIFICATIONS = ("selfWateringFlowerPots", "openContainers", "openDoors", "noElectricalAction")
#: Tasks that need electrical actions: ``noElectricalAction`` is dropped for them (the simulator refuses it).
ELECTRICAL_MARKERS = ("power-component", "conductivity")

#: Per task: (number of train variations (ids 0..n-1), first test variation, last test variation), as
#: ``get_variations_train()`` / ``get_variations_test()`` report them for scienceworld 1.2.3.
TASK_VARIATIONS: dict[str, tuple[int, int, int]] = {}  # filled below from _VARIATION_TABLE

#: The 90 test episodes (17 of the 30 task types). Rule (deterministic, computed once with the simulator):
#: for each task, scan its test variations in ascending order, stopping at the third consecutive one
#: whose gold path (``load(..., generateGoldPath=True)`` under :data:`SIMPLIFICATIONS` in a JVM started
#: with :data:`JVM_OPTIONS`, replayed right after that load) does not reach score 100 within 30 steps; the
#: ones that do are eligible. Then visit the tasks round-robin in the simulator's task order, taking each
#: task's next eligible variation, until 90 are chosen. Tasks whose gold paths never fit in 30 steps (boil, freeze, melt, grow-plant,
#: grow-fruit, the inclined-plane and mendelian tasks, ...) cannot appear.
TEST_EPISODES: tuple[tuple[str, int], ...] = ()  # filled below from _TEST_TABLE

#: task:num_train:first_test:last_test, one task a line.
_VARIATION_TABLE = """
boil:14:21:29
change-the-state-of-matter-of:14:21:29
chemistry-mix:16:24:31
chemistry-mix-paint-secondary-color:18:27:35
chemistry-mix-paint-tertiary-color:18:27:35
find-animal:150:225:299
find-living-thing:150:225:299
find-non-living-thing:150:225:299
find-plant:150:225:299
freeze:14:21:29
grow-fruit:62:93:125
grow-plant:62:93:125
identify-life-stages-1:6:9:13
identify-life-stages-2:4:6:9
inclined-plane-determine-angle:84:126:167
inclined-plane-friction-named-surfaces:692:1038:1385
inclined-plane-friction-unnamed-surfaces:80:120:161
lifespan-longest-lived:62:93:124
lifespan-longest-lived-then-shortest-lived:62:93:124
lifespan-shortest-lived:62:93:124
measure-melting-point-known-substance:218:327:435
measure-melting-point-unknown-substance:150:225:299
melt:14:21:29
mendelian-genetics-known-plant:60:90:119
mendelian-genetics-unknown-plant:240:360:479
power-component:10:15:19
power-component-renewable-vs-nonrenewable-energy:10:15:19
test-conductivity:450:675:899
test-conductivity-of-unknown-substances:300:450:599
use-thermometer:270:405:539
"""
#: task:variations of the 90 test episodes (the output of the rule in TEST_EPISODES's comment).
_TEST_TABLE = """
chemistry-mix:24,25,26,29
chemistry-mix-paint-secondary-color:27,28,29,30,31,32
chemistry-mix-paint-tertiary-color:27,30,31,32,33,34
find-animal:225,226,227,228,229,230
find-living-thing:225,228,229,230,232,233
find-non-living-thing:225,226,227,228,229,230
find-plant:225,226,227,228,229,230
identify-life-stages-2:6,7,8,9
lifespan-longest-lived:93,94,95,96,97,98
lifespan-longest-lived-then-shortest-lived:93,94,95,96,97,98
lifespan-shortest-lived:93,94,95,96,97,98
measure-melting-point-known-substance:328
power-component:15,16,17,18,19
power-component-renewable-vs-nonrenewable-energy:15,16,17,18,19
test-conductivity:675,676,677,678,679,680
test-conductivity-of-unknown-substances:450,452,453,454,455,456
use-thermometer:405,406,407,408,409
"""

NO_MATCH = "No known action matches that input."
AMBIGUOUS = "Ambiguous request"
#: Commands that would restart the episode behind the env's back.
BLOCKED_COMMANDS = ("reset task",)
MAX_COMMAND_LENGTH = 300
#: States whose valid-action lists an env keeps (least recently used dropped first).
ADMISSIBLE_CACHE_SIZE = 1024
#: Bump when the gold paths' provenance changes (v2: JVM with constant identity hashes; v6: ambiguity answers
#: dropped, replay-checked, fresh-JVM fallback).
GOLD_CACHE_VERSION = 6
#: A gold path must reach score 100 within this many commands (the registered ``max_episode_steps``).
GOLD_MAX_STEPS = 30
#: First words of ScienceWorld's action templates (``get_possible_actions()``, plus connect/disconnect and
#: ``drop``, an alias of ``put down`` that gold paths use but the valid-action list never shows).
ACTION_VERBS = frozenset({
    "activate", "close", "deactivate", "drop", "dunk", "eat", "flush", "focus", "go", "inventory", "look", "mix",
    "move", "open", "pick", "pour", "put", "read", "task", "use", "wait", "wait1", "connect", "disconnect",
    "examine", "teleport",
})


class SimulatorTimeout(AgentRMGymError, TimeoutError):
    """The ScienceWorld JVM did not answer in time; it has been stopped (the next ``reset`` starts a new one)."""


class SimulatorDied(AgentRMGymError, RuntimeError):
    """The ScienceWorld JVM is gone (killed or crashed); call ``reset()`` to start a new one."""


def _shutdown_jvm(backend: Any) -> None:
    """Stop a ``scienceworld.ScienceWorldEnv``'s JVM and make sure the process is gone (never raises)."""
    proc = getattr(getattr(backend, "_gateway", None), "java_process", None)
    try:
        backend._gateway.shutdown()
    except Exception:
        pass
    if proc is not None:
        try:
            if proc.poll() is None:
                proc.stdin.write(b"\n")  # py4j's GatewayServer exits when its stdin line arrives
                proc.stdin.flush()
                proc.wait(timeout=5)
        except Exception:
            pass
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except Exception:
                pass
    backend.close = lambda: None  # its __del__ would shut the (closed) gateway down again


#: JVM options that make the simulator a function of (task, variation, simplifications, commands). The
#: Scala world keeps its objects in hash sets keyed by *identity* hash codes, which HotSpot draws from a
#: per-thread random stream that keeps running across loads: a second ``load`` of the same variation in
#: the same JVM then lists objects in another order, disambiguates their names differently ("ceramic cup"
#: vs "cup containing nothing") and can make a gold path computed on one load fail on the next.
#: ``hashCode=2`` gives every object the same identity hash, so iteration order is insertion order.
#: The simulator also draws from Scala's global ``Random`` while *listing* valid actions, so the world's
#: later dynamics (wandering animals, ...) would depend on how often an agent asked for that list;
#: ``--add-opens`` lets :meth:`ScienceWorldSimulator.query` put the generator's seed back after such calls.
JVM_OPTIONS = ("-XX:+UnlockExperimentalVMOptions", "-XX:hashCode=2", "--add-opens=java.base/java.util=ALL-UNNAMED")
#: ``java.util.Random.setSeed(x)`` stores ``x ^ RANDOM_MULTIPLIER``; xor again to restore a raw seed.
RANDOM_MULTIPLIER = 0x5DEECE66D
_LAUNCH_LOCK = threading.Lock()


def _launch_backend() -> Any:
    """Start a ``scienceworld.ScienceWorldEnv`` whose JVM runs with :data:`JVM_OPTIONS`."""
    import scienceworld.scienceworld as sw_module
    from py4j.java_gateway import launch_gateway

    def launch(*args: Any, **kwargs: Any) -> Any:
        kwargs["javaopts"] = [*kwargs.get("javaopts", []), *JVM_OPTIONS]
        return launch_gateway(*args, **kwargs)

    # the package passes no JVM options of its own; swap its launcher only while this env starts
    with _LAUNCH_LOCK:
        sw_module.launch_gateway = launch
        try:
            return sw_module.ScienceWorldEnv("", None, 10**9)
        finally:
            sw_module.launch_gateway = launch_gateway


def _identity_hash_probe(backend: Any) -> int:
    jvm = backend._gateway.jvm
    return int(jvm.java.lang.System.identityHashCode(jvm.java.lang.Object()))


def _global_random_handles(backend: Any) -> tuple[Any, Any]:
    """``(field, generator)``: the private ``seed`` field of ``java.util.Random`` and Scala's global generator."""
    jvm = backend._gateway.jvm
    module = jvm.java.lang.Class.forName("scala.util.Random$").getField("MODULE$").get(None)
    field = jvm.java.lang.Class.forName("java.util.Random").getDeclaredField("seed")
    field.setAccessible(True)
    generator = module.self()
    field.get(generator)  # fails here, not later, if the JVM refused the access
    return field, generator


class ScienceWorldSimulator:
    """One ScienceWorld JVM with a timeout on every call.

    Args:
        timeout: seconds any one call may take before the JVM is stopped and :class:`SimulatorTimeout` raised.
    """

    def __init__(self, timeout: float = 60.0):
        self.timeout = timeout
        self._backend: Any = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._finalizer: weakref.finalize | None = None
        self.start_seconds = 0.0
        #: whether the JVM's identity hashes are constant (see :data:`JVM_OPTIONS`)
        self.deterministic = False
        self._random: tuple[Any, Any] | None = None

    @property
    def running(self) -> bool:
        return self._backend is not None

    @property
    def pid(self) -> int | None:
        """The process id of the JVM (``None`` when not running)."""
        if self._backend is None:
            return None
        return self._backend._gateway.java_process.pid

    def start(self) -> None:
        """Launch the JVM (about 1.5 s on an idle machine)."""
        if self._backend is not None:
            return
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="scienceworld")
        began = time.perf_counter()
        future = self._pool.submit(_launch_backend)
        try:
            backend = future.result(timeout=max(self.timeout, 120.0))
        except concurrent.futures.TimeoutError as exc:
            self._pool.shutdown(wait=False)
            self._pool = None
            raise SimulatorTimeout("ScienceWorld: the JVM did not start within the timeout") from exc
        self.start_seconds = time.perf_counter() - began
        self._backend = backend
        # runs at garbage collection of this object and at interpreter exit, whichever comes first
        self._finalizer = weakref.finalize(self, _shutdown_jvm, backend)
        try:
            self._random = self.call(_global_random_handles, "random handles")
            self.deterministic = self.call(lambda b: _identity_hash_probe(b) == 1, "identity hash probe")
        except (SimulatorTimeout, SimulatorDied):
            raise
        except Exception:
            self._random, self.deterministic = None, False
        if not self.deterministic:
            warnings.warn(
                f"ScienceWorld: this JVM did not take {' '.join(JVM_OPTIONS)}, so object listings, names, gold "
                "paths and dynamics may differ between loads of the same variation", RuntimeWarning, stacklevel=2,
            )

    def call(self, fn: Callable[[Any], T], what: str, timeout: float | None = None) -> T:
        """Run ``fn(backend)`` in the worker thread; stop the JVM and raise if it takes too long."""
        if self._backend is None or self._pool is None:
            raise SimulatorDied(f"ScienceWorld: the JVM is not running (while trying to {what}); call reset()")
        limit = self.timeout if timeout is None else timeout
        future = self._pool.submit(fn, self._backend)
        try:
            return future.result(timeout=limit)
        except concurrent.futures.TimeoutError as exc:
            self.close()
            raise SimulatorTimeout(
                f"ScienceWorld did not answer {what!r} within {limit:g} s; the JVM was stopped, "
                "call reset() to start a new one"
            ) from exc
        except Exception as exc:
            if self._backend is not None and self._backend._gateway.java_process.poll() is not None:
                self.close()
                raise SimulatorDied(f"ScienceWorld: the JVM died during {what!r}; call reset()") from exc
            raise

    def query(self, fn: Callable[[Any], T], what: str, timeout: float | None = None) -> T:
        """Like :meth:`call` for a read-only call: the simulator's global random generator is left as it was."""
        handles = self._random
        if handles is None:
            return self.call(fn, what, timeout)
        field, generator = handles

        def run(backend: Any) -> T:
            seed = int(field.get(generator))
            try:
                return fn(backend)
            finally:
                generator.setSeed(seed ^ RANDOM_MULTIPLIER)

        return self.call(run, what, timeout)

    def close(self) -> None:
        """Stop the JVM (idempotent); the process is gone when this returns."""
        if self._finalizer is not None:
            self._finalizer()  # calls _shutdown_jvm once
            self._finalizer = None
        self._backend = None
        self._random = None
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


def _parse_tables() -> None:
    for line in _VARIATION_TABLE.split():
        task, n_train, first, last = line.split(":")
        TASK_VARIATIONS[task] = (int(n_train), int(first), int(last))
    episodes = []
    for line in _TEST_TABLE.split():
        task, vars_ = line.split(":")
        episodes.extend((task, int(v)) for v in vars_.split(","))
    globals()["TEST_EPISODES"] = tuple(episodes)


_parse_tables()


def simplifications_for(task: str, simplifications: tuple[str, ...] = SIMPLIFICATIONS) -> str:
    """The simplification string for ``task`` (without ``noElectricalAction`` for electrical tasks)."""
    electrical = any(m in task for m in ELECTRICAL_MARKERS)
    return ",".join(s for s in simplifications if not (electrical and s == "noElectricalAction"))


def normalize_command(command: str) -> str:
    """Lower case, single spaces, no trailing full stop: how commands are compared."""
    return re.sub(r"\s+", " ", command.strip().lower()).rstrip(".").strip()


def _split_top_level(text: str) -> list[str]:
    """Split at ", " outside parentheses."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0 and text[i + 1: i + 2] == " ":
            items.append(text[start:i])
            start = i + 2
    items.append(text[start:])
    return items


def _sorted_list(text: str) -> str:
    """Sort a ", "-separated listing (recursively inside "(containing ...)") ."""
    out, i = [], 0
    while i < len(text):
        j = text.find("(containing ", i)
        if j < 0:
            out.append(text[i:])
            break
        depth, k = 0, j
        for k in range(j, len(text)):
            depth += {"(": 1, ")": -1}.get(text[k], 0)
            if depth == 0:
                break
        inner = text[j + len("(containing "): k]
        out.append(text[i:j] + "(containing " + _sorted_list(inner) + ")")
        i = k + 1
    joined = "".join(out)
    items = _split_top_level(joined)
    return ", ".join(sorted(items)) if len(items) > 1 else joined


def canonical_observation(text: str) -> str:
    """ScienceWorld's text with its object listings in sorted order.

    The simulator lists the contents of rooms and containers in hash-set order, which changes between
    loads of the same variation; sorting the listings makes observations a function of the state, so that
    snapshot/restore (a reload and replay) and seeded runs give identical text.
    """
    lines = text.split("\n")
    for n, line in enumerate(lines):
        for marker in (" is: ", "you see: "):
            at = line.find(marker)
            if at >= 0:
                head, body = line[: at + len(marker)], line[at + len(marker):]
                tail = "." if body.endswith(".") else ""
                lines[n] = head + _sorted_list(body[: len(body) - len(tail)]) + tail
                break
        else:
            if "(containing " in line:
                lines[n] = _sorted_list(line) if not line.startswith("\t") else "\t" + _sorted_list(line[1:])
    out: list[str] = []
    block: list[str] = []
    for line in lines + [""]:
        if line.startswith("\t"):
            block.append(line)
            continue
        out.extend(sorted(block))
        block = []
        out.append(line)
    return "\n".join(out[:-1])


def send_command(sim: ScienceWorldSimulator, command: str) -> tuple[str, float, bool]:
    """Send one command, answering an ambiguity prompt with its first reading (``0``), as AgentBoard does.

    Returns:
        ``(text, score, completed)``: the simulator's raw answer, its score / 100 and whether it ended the task.
    """
    text = sim.call(lambda b: b.server.step(command), command)
    if text.startswith(AMBIGUOUS):
        text = sim.call(lambda b: b.server.step("0"), f"{command} (ambiguity: 0)")
    score, completed = sim.call(lambda b: (b.server.getScore(), b.server.getCompleted()), "getScore")
    return text, round(100 * float(score)) / 100, bool(completed)


def generate_gold_path(task: str, variation: int, simplifications: str, timeout: float = 60.0) -> list[str]:
    """The simulator's gold path for one variation, made in a fresh JVM that is stopped before returning.

    The simulator's gold-path generator depends on what its JVM loaded before (after other loads of its task,
    test-conductivity-of-unknown-substances@455's path grows from 29 to 33 steps, past the 30-step limit),
    while paths from fresh JVMs agree with each other; this makes one in a JVM of its own (about
    2-5 s more than a load in the env's JVM). Bare
    numbers in the path (answers to "which one did you mean" prompts) are dropped: :func:`send_command`
    answers those prompts itself.
    """
    sim = ScienceWorldSimulator(timeout=timeout)
    try:
        sim.start()
        sim.call(lambda b: b.load(task, variation, simplifications, generateGoldPath=True),
                 f"load {task}@{variation} (gold)", timeout=max(timeout, 300.0))
        raw = sim.call(lambda b: list(b.get_gold_action_sequence()), "get_gold_action_sequence")
    finally:
        sim.close()
    return _clean_gold(raw)


def _clean_gold(raw: list[str]) -> list[str]:
    """Normalized gold commands without bare numbers (answers to ambiguity prompts, which the env answers)."""
    return [c for c in map(normalize_command, raw) if c and not c.isdigit()]

def _task_id(task: str, variation: int) -> str:
    return f"{task}@{variation}"


class ScienceWorldEnv(TextEnv):
    """You are a helpful assistant to do some scientific experiments in an environment.

    ## Description
    ScienceWorld (Wang et al., 2022) through the ``scienceworld`` package with AgentBoard's settings:
    simplifications selfWateringFlowerPots, openContainers, openDoors and noElectricalAction (dropped for
    the electrical tasks, which need it), 30 steps. A task id is ``"<task>@<variation>"``, e.g.
    ``"chemistry-mix@24"``. The test split is 90 episodes from the simulator's test variations whose
    gold path fits in 30 steps (:data:`TEST_EPISODES`); the train split is every train variation of
    every task (1,800+ episodes).

    ## Action Space
    ScienceWorld's commands: ``look around``, ``inventory``, ``task``, ``open OBJ``, ``close OBJ``,
    ``activate OBJ``, ``deactivate OBJ``, ``go to LOC``, ``pick up OBJ``, ``put down OBJ``,
    ``move OBJ to OBJ``, ``pour OBJ in OBJ``, ``dunk OBJ in OBJ``, ``mix OBJ``, ``focus on OBJ``,
    ``use OBJ on OBJ``, ``look at OBJ``, ``look in OBJ``, ``read OBJ``, ``eat OBJ``, ``flush OBJ``,
    ``wait`` (10 ticks), ``wait1``. ``info["admissible_actions"]`` is the simulator's list of valid
    action-object combinations. A command outside that list is sent to the simulator only when it is
    plain words starting with one of ScienceWorld's action verbs; it is valid iff the simulator parses it (anything else, and any
    garbage, is answered "No known action matches that input." with ``action_valid=False`` and never
    reaches the JVM). An ambiguous command is resolved to the simulator's first reading, as AgentBoard
    does. ``reset task`` is refused.

    ## Observation Space
    The simulator's text, e.g. "This room is called the hallway. In it, you see: ...". The first
    observation is the room description (``look around``, taken as a free action).

    ## Rewards
    The increase of the progress rate, which is the simulator's score / 100 (negative scores count
    as 0), so an episode's rewards sum to its best score / 100.

    ## Starting State
    The task's variation as ``load(task, variation, simplifications)`` builds it.

    ## Episode End
    Terminates on success (score 100) or when the simulator ends the task otherwise (e.g. focusing on
    the wrong object: negative score); truncated at 30 steps by ``max_episode_steps``.

    ## Info keys
    The TextEnv keys; ``expert_action()`` follows the simulator's gold path while the agent has taken
    exactly its prefix and returns ``None`` after any deviation (the gold path is not replanned).

    ## Arguments
    ``split`` ("train" or "test"), ``simplifications`` (tuple of names), ``timeout`` (seconds a JVM call
    may take; a hung call raises :class:`SimulatorTimeout`).

    ## Version History
    v0: initial version (scienceworld 1.2.3).
    """

    task_name = "ScienceWorld"
    invalid_action_message = NO_MATCH
    command_vocabulary = ("look around", "inventory", "task", "wait1")

    def __init__(
        self,
        split: str = "train",
        render_mode: str | None = None,
        simplifications: tuple[str, ...] | list[str] = SIMPLIFICATIONS,
        timeout: float = 60.0,
    ):
        super().__init__(split=split, render_mode=render_mode)
        from agentrm_gym.registry import require_extra

        require_extra("ScienceWorld")
        if shutil.which("java") is None:
            raise MissingExtra(
                "ScienceWorld needs a Java runtime (11+) on PATH: e.g. `apt-get install openjdk-17-jre-headless` "
                "(Debian/Ubuntu) or `conda install openjdk=17`"
            )
        unknown = set(simplifications) - {*SIMPLIFICATIONS, "teleportAction"}
        if unknown:
            raise ValueError(f"unknown ScienceWorld simplifications {sorted(unknown)}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self.simplifications = tuple(simplifications)
        self.simulator = ScienceWorldSimulator(timeout=timeout)
        self._task = ""
        self._variation = 0
        self._executed: list[str] = []
        self._score = 0.0
        self._completed = False
        self._admissible: list[str] | None = None
        self._admissible_set: set[str] = set()
        # the simulator is a function of (task, variation, commands sent since load), so the valid-action
        # list (about 0.1-0.3 s of JVM time) is cached per state: resets, restores and replays reuse it
        self._admissible_cache: OrderedDict[tuple[str, int, tuple[str, ...]], list[str]] = OrderedDict()
        self._gold: list[str] | None = None

    # -------------------------------------------------------------- tasks
    def task_ids(self, split: str = "test") -> list[str]:
        if split == "test":
            return [_task_id(t, v) for t, v in TEST_EPISODES]
        if split == "train":
            return [_task_id(t, v) for t, (n, _, _) in TASK_VARIATIONS.items() for v in range(n)]
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")

    @staticmethod
    def parse_task_id(task_id: str) -> tuple[str, int]:
        """``"boil@12"`` -> ``("boil", 12)``; raises :class:`UnknownTask` for anything else."""
        task, sep, var = task_id.partition("@")
        if sep and task in TASK_VARIATIONS and var.isdigit():
            _, _, last = TASK_VARIATIONS[task]
            if int(var) <= last:
                return task, int(var)
        raise UnknownTask(
            f"ScienceWorld: {task_id!r}; ids look like 'chemistry-mix@24' (task@variation), tasks: "
            + ", ".join(TASK_VARIATIONS)
        )

    def _simplification_str(self, task: str) -> str:
        return simplifications_for(task, self.simplifications)

    # -------------------------------------------------------------- simulator plumbing
    def _ensure_simulator(self) -> ScienceWorldSimulator:
        if not self.simulator.running:
            self.simulator.start()
        return self.simulator

    def _load(self, task: str, variation: int, gold: bool = False) -> None:
        sim = self._ensure_simulator()
        simp = self._simplification_str(task)
        timeout = max(sim.timeout, 300.0) if gold else None
        sim.call(lambda b: b.load(task, variation, simp, generateGoldPath=gold),
                 f"load {task}@{variation}", timeout=timeout)
        self._task, self._variation = task, variation
        self._executed = []
        self._score, self._completed = 0.0, False
        self._admissible = None

    def _send(self, command: str) -> str:
        """Send one command; resolve an ambiguity prompt to its first reading; refresh the score."""
        text, self._score, self._completed = send_command(self.simulator, command)
        self._admissible = None
        return canonical_observation(text)

    def _replay(self, commands: list[str] | tuple[str, ...]) -> None:
        for command in commands:
            self._send(command)
            self._executed.append(command)

    # -------------------------------------------------------------- episode
    def _load_task(self, task_id: str) -> tuple[str, str]:
        task, variation = self.parse_task_id(task_id)
        self._load(task, variation)
        self._gold = None
        goal = self.simulator.query(lambda b: b.server.freeActionTaskDesc(), "task description")
        obs = self.simulator.query(lambda b: b.server.freeActionLook(), "look around")
        goal = goal.strip().removeprefix("Task Description:").strip()
        return goal, canonical_observation(obs)

    def _plausible(self, command: str) -> bool:
        """Whether a non-admissible command may be sent to the JVM: plain words after a known action verb."""
        if not command or len(command) > MAX_COMMAND_LENGTH or not command.isascii() or not command.isprintable():
            return False
        if command in BLOCKED_COMMANDS:
            return False
        words = command.split()
        if not all(re.fullmatch(r"[a-z0-9'-]+", w) for w in words):
            return False
        return words[0] in ACTION_VERBS

    def _step(self, action: str) -> StepOutcome:
        command = normalize_command(action)
        self.admissible_actions()
        if command not in self._admissible_set and not self._plausible(command):
            return StepOutcome(NO_MATCH, valid=False)
        text = self._send(command)
        if text.strip() == NO_MATCH:
            return StepOutcome(text, valid=False)
        self._executed.append(command)
        failed = (self._completed or self._score < 0) and self._score < 1.0
        return StepOutcome(text, valid=True, terminal=failed)

    def _progress(self) -> float:
        return max(0.0, self._score)

    def _success(self) -> bool:
        return self._score >= 1.0

    def admissible_actions(self) -> list[str] | None:
        if self._task_id is None:
            return None
        if self._admissible is None:
            key = (self._task, self._variation, tuple(self._executed))
            acts = self._admissible_cache.get(key)
            if acts is None:
                combos = self.simulator.query(lambda b: list(b.get_valid_action_object_combinations()),
                                             "get_valid_action_object_combinations")
                acts = sorted({a for a in map(normalize_command, combos) if a and a not in BLOCKED_COMMANDS})
                self._admissible_cache[key] = acts
                if len(self._admissible_cache) > ADMISSIBLE_CACHE_SIZE:
                    self._admissible_cache.popitem(last=False)
            else:
                self._admissible_cache.move_to_end(key)
            self._admissible = acts
            self._admissible_set = set(acts)
        return list(self._admissible)

    # -------------------------------------------------------------- oracle
    def gold_path(self) -> list[str]:
        """The simulator's gold action sequence for the current task (cached on disk after the first time).

        The simulator's gold-path generator depends on what its JVM loaded before, and so does the
        resolution of ambiguous commands, so a path is only kept once it has been replayed in this env's JVM
        (after a plain reload): first the path generated in this JVM; if that does not reach score 100
        within :data:`GOLD_MAX_STEPS` commands, the one from a fresh JVM (:func:`generate_gold_path`) when
        that one does better. The agent's episode is rebuilt afterwards (reload and replay).
        """
        if self._gold is not None:
            return self._gold
        simp = self._simplification_str(self._task)
        ident = f"{self._task}@{self._variation}|{simp}|v{GOLD_CACHE_VERSION}|{','.join(JVM_OPTIONS)}"
        key = hashlib.sha1(ident.encode()).hexdigest()[:16]
        path = cache_dir("sciworld", "gold") / f"{self._task}@{self._variation}-{key}.json"
        if path.exists():
            self._gold = list(json.loads(path.read_text())["gold"])
            return self._gold
        executed = list(self._executed)
        self._load(self._task, self._variation, gold=True)
        raw = self.simulator.call(lambda b: list(b.get_gold_action_sequence()), "get_gold_action_sequence")
        gold = _clean_gold(raw)
        solved_in = self._replay_check(gold)
        source = "env JVM"
        if solved_in is None or solved_in > GOLD_MAX_STEPS:
            fresh = generate_gold_path(self._task, self._variation, simp, timeout=self.simulator.timeout)
            fresh_solved = self._replay_check(fresh)
            if fresh_solved is not None and (solved_in is None or fresh_solved < solved_in):
                gold, solved_in, source = fresh, fresh_solved, "fresh JVM"
        self._gold = gold
        _write_json_atomic(path, {"task": self._task, "variation": self._variation, "simplifications": simp,
                                  "gold": gold, "solved_in": solved_in, "source": source})
        self._load(self._task, self._variation)
        self._replay(executed)  # back to where the agent was
        return self._gold

    def _replay_check(self, commands: list[str]) -> int | None:
        """Reload the task and send ``commands``; the number sent when score 100 was reached (``None``: never)."""
        self._load(self._task, self._variation)
        for n, command in enumerate(commands, 1):
            self._send(command)
            if self._score >= 1.0:
                return n
            if self._completed or self._score < 0:
                return None
        return None

    def expert_action(self) -> str | None:
        if self._task_id is None or self._terminated:
            return None
        gold = self.gold_path()
        k = len(self._executed)
        if k >= len(gold) or self._executed != gold[:k]:
            return None
        return gold[k]

    # -------------------------------------------------------------- snapshots: reload + replay of sent commands
    def _get_state(self) -> Any:
        return {"task": self._task, "variation": self._variation, "executed": tuple(self._executed)}

    def _set_state(self, state: Any) -> None:
        target = list(state["executed"])
        same_task = (self._task, self._variation) == (state["task"], state["variation"])
        if not (same_task and self.simulator.running and self._executed == target[: len(self._executed)]):
            self._load(state["task"], state["variation"])
        self._replay(target[len(self._executed):])

    def close(self) -> None:
        """Stop the JVM (a later ``reset`` starts a new one)."""
        self.simulator.close()
        super().close()

    def instruction(self) -> str:
        return (
            "You are a helpful assistant to do some scientific experiments in an environment.\n"
            "In the environment there are several rooms: kitchen, foundry, workshop, bathroom, outside, "
            "living room, bedroom, greenhouse, art studio, hallway.\n"
            "You should explore the environment and find the items you need to complete the experiment.\n"
            "The available actions are:\n"
            "open OBJ: open a container\nclose OBJ: close a container\nactivate OBJ: activate a device\n"
            "deactivate OBJ: deactivate a device\nconnect OBJ to OBJ: connect electrical components\n"
            "disconnect OBJ: disconnect electrical components\nuse OBJ [on OBJ]: use a device/item\n"
            "look around: describe the current room\nlook at OBJ: describe an object in detail\n"
            "look in OBJ: describe a container's contents\nread OBJ: read a note or book\n"
            "move OBJ to OBJ: move an object to a container\npick up OBJ: move an object to the inventory\n"
            "put down OBJ: drop an inventory item\npour OBJ into OBJ: pour a liquid into a container\n"
            "dunk OBJ into OBJ: dunk a container into a liquid\nmix OBJ: chemically mix a container\n"
            "go to LOC: move to a new location\neat OBJ: eat a food\nflush OBJ: flush a toilet\n"
            "focus on OBJ: signal intent on a task object\nwait: take no action for 10 iterations\n"
            "wait1: take no action for 1 iteration\ntask: describe the current task\n"
            "inventory: list your inventory"
        )


def _write_json_atomic(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)
