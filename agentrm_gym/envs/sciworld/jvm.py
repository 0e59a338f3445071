"""The ScienceWorld JVM: one simulator process (a Scala jar driven over py4j) behind calls with a timeout.

A :class:`ScienceWorldSimulator` starts its JVM on demand and stops it on ``close()``, at garbage
collection and at interpreter exit. Every call into the JVM runs in a worker thread with a timeout, so a
hung simulator raises :class:`SimulatorTimeout` (naming the command) instead of freezing the run, and a
dead one :class:`SimulatorDied`. The JVM runs with constant identity hashes (:data:`JVM_OPTIONS`), and
read-only queries (the valid-action list, which draws from Scala's global random generator) put that
generator's seed back (:meth:`ScienceWorldSimulator.query`), so that the simulator is a function of
(task, variation, simplifications, commands sent since ``load``).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from agentrm_gym.core import AgentRMGymError

T = TypeVar("T")


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


def valid_action_combinations(backend: Any) -> list[str]:
    """The simulator's valid action-object combinations, as ``get_valid_action_object_combinations()`` lists them.

    The list crosses py4j as one string: iterating the Java list from Python costs one round trip per
    element (a third of the listing's time for ~120 actions); no action text contains a NUL.
    """
    combos = backend.server.getValidActionObjectCombinations()
    if combos.size() == 0:
        return []
    return str(backend._gateway.jvm.java.lang.String.join("\x00", combos)).split("\x00")


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
