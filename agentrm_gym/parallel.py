"""Run independent jobs (episodes, trees) in this process, in a pool of worker processes, or on Ray.

:func:`run_jobs` is the one loop behind the pipeline's ``--workers N`` and ``--ray ADDRESS``::

    for job, result in run_jobs(play_one, jobs, partial(Context, cfg, root), workers=2):
        append_jsonl(path, [result])          # the caller records each result as it arrives

* ``fn(context, job) -> result`` is a module-level function (pickled by reference); ``jobs`` are small
  picklable values (a task and an id); results come back to the calling process, which alone writes files,
  so a worker on another machine needs no shared disk for its output.
* ``make_context()`` builds a worker's context once: the envs, policy and reward model a worker owns
  (JVMs, Z-machines and SQLite connections never cross a process boundary). ``context.close()`` runs when
  the worker ends, also after Ctrl-C or SIGTERM.
* Results arrive as jobs finish, in any order. A job's result must depend on the job alone (seeded by the
  episode's identity), so the output for a seed is the same for any number of workers once the caller
  puts it in a canonical order (:func:`canonical_order`; :func:`canonical_jsonl` reorders a file's
  lines byte for byte).
* ``workers <= 1`` and no Ray: everything runs here, with ``context`` when one is given (the caller's
  envs are reused). Processes are started with ``spawn`` (no forked torch threads or JVM locks).
* Ray (``pip install agentrm-gym[dist]``): ``ray="local"`` starts a local Ray with ``workers`` CPUs,
  ``"auto"`` joins the cluster this machine belongs to, anything else is a cluster address
  (``ray://host:10001`` or ``host:6379``). One actor per worker (``workers``, or every CPU of the
  cluster for ``workers <= 1``) owns a context; jobs stream to idle actors.

Ctrl-C (or an exception in a job) stops the workers, closes their simulators and re-raises; every result
already yielded has been recorded by the caller, so re-running the stage resumes from there.
"""

from __future__ import annotations

import atexit
import json
import multiprocessing as mp
import os
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

from agentrm_gym.core import AgentRMGymError
from agentrm_gym.files import write_bytes_atomic

J = TypeVar("J")
K = TypeVar("K")
R = TypeVar("R")

__all__ = ["JobFailed", "canonical_jsonl", "canonical_order", "resolve_workers", "run_jobs"]


class JobFailed(AgentRMGymError, RuntimeError):
    """A job raised in a worker (or the worker died); the message names the job. Finished results are kept."""


def resolve_workers(workers: int) -> int:
    """``workers`` itself, or every core for ``0``; never below 1."""
    return max(1, workers if workers > 0 else os.cpu_count() or 1)


def run_jobs(fn: Callable[[Any, J], Any], jobs: Iterable[J], make_context: Callable[[], Any], *,
             workers: int = 1, ray: str = "", context: Any = None, desc: str = "",
             progress_bar: bool = True) -> Iterator[tuple[J, Any]]:
    """Yield ``(job, fn(context, job))`` for every job, as jobs finish (see the module docstring).

    Raises:
        JobFailed: a job raised (its traceback is chained) or a worker process died.
        MissingExtra: ``ray`` is set and Ray is not installed.
    """
    jobs = list(jobs)
    if not jobs:
        return
    if ray:
        source = _ray_jobs(fn, jobs, make_context, workers, ray)
    elif workers <= 1:
        source = _local_jobs(fn, jobs, make_context, context)
    else:
        source = _pool_jobs(fn, jobs, make_context, workers)
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress_bar, leave=False)
    try:
        for job, result in source:
            bar.update(1)
            yield job, result
    finally:
        source.close()  # stops the workers now, also when the caller stopped early (Ctrl-C, an error)
        bar.close()


def canonical_order(records: Sequence[R], key: Callable[[R], K], order: Sequence[K]) -> list[R]:
    """``records`` sorted by the position of ``key(record)`` in ``order`` (records of one key keep their
    relative order; keys not in ``order`` go last, in their order): the file a single process writes."""
    rank = {k: i for i, k in enumerate(order)}
    return sorted(records, key=lambda r: rank.get(key(r), len(rank)))


def canonical_jsonl(path: Path, key: Callable[[dict[str, Any]], Any], order: Sequence[Any]) -> None:
    """Reorder ``path``'s lines (kept byte for byte) by ``key(record)``'s position in ``order``; lines of one
    key keep their order. A no-op when the file is already in that order or missing."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_bytes().splitlines(keepends=True) if ln.strip()]
    try:
        pairs = [(ln, json.loads(ln)) for ln in lines]
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: damaged line ({exc}); delete {path.parent} to redo the stage") from exc
    ordered = [ln for ln, _ in canonical_order(pairs, lambda p: key(p[1]), order)]
    if ordered != lines:
        write_bytes_atomic(path, b"".join(ordered))


# ----------------------------------------------------------------------------- in this process
def _local_jobs(fn: Callable[[Any, J], Any], jobs: list[J], make_context: Callable[[], Any],
                context: Any) -> Iterator[tuple[J, Any]]:
    own = context is None
    ctx = make_context() if own else context
    try:
        for job in jobs:
            yield job, fn(ctx, job)
    finally:
        if own:
            _close(ctx)


# ----------------------------------------------------------------------------- a process pool
_CONTEXT: Any = None


def _close(ctx: Any) -> None:
    close = getattr(ctx, "close", None)
    if close is not None:
        close()


def _worker_init(make_context: Callable[[], Any]) -> None:
    """Build this worker's context; Ctrl-C is the parent's to handle, SIGTERM closes the context.

    The SIGTERM handler is in place before the context is built: a worker stopped while building it (the
    parent interrupted right after starting the pool) finishes building, then closes it, where the default
    action would leave it open. (Blocking the signal would not do: threads a library started are not blocked.)"""
    global _CONTEXT
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    state = {"building": True, "stopped": False}

    def on_term(signum: int, frame: Any) -> None:
        if state["building"]:
            state["stopped"] = True  # close it once it exists
            return
        _worker_exit()
        os._exit(0)  # not sys.exit: the pool's worker loop would catch SystemExit and wait for more work

    signal.signal(signal.SIGTERM, on_term)
    _CONTEXT = make_context()
    atexit.register(_worker_exit)
    state["building"] = False
    if state["stopped"]:
        on_term(signal.SIGTERM, None)


def _worker_exit() -> None:
    global _CONTEXT
    ctx, _CONTEXT = _CONTEXT, None
    if ctx is not None:
        _close(ctx)


def _worker_run(fn: Callable[[Any, J], Any], job: J) -> Any:
    return fn(_CONTEXT, job)


def _pool_jobs(fn: Callable[[Any, J], Any], jobs: list[J], make_context: Callable[[], Any],
               workers: int) -> Iterator[tuple[J, Any]]:
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=mp.get_context("spawn"),
                               initializer=_worker_init, initargs=(make_context,))
    pending: dict[Future, tuple[int, J]] = {}  # a future's job and its position in ``jobs``
    queue = enumerate(jobs)
    clean = False
    try:
        for rank, job in queue:  # two jobs in flight per worker keep every worker busy
            pending[pool.submit(_worker_run, fn, job)] = (rank, job)
            if len(pending) >= 2 * workers:
                break
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(finished, key=lambda f: pending[f][0]):
                _, job = pending.pop(fut)
                yield job, _result(fut, job)
                nxt = next(queue, None)
                if nxt is not None:
                    pending[pool.submit(_worker_run, fn, nxt[1])] = nxt
        clean = True
    finally:
        _stop_pool(pool, clean)


def _result(fut: Future, job: Any) -> Any:
    try:
        return fut.result()
    except BrokenProcessPool as exc:
        raise JobFailed(f"a worker process died while running {job!r} (killed, or out of memory); "
                        "re-run the stage to resume from the finished results") from exc
    except Exception as exc:
        raise JobFailed(f"job {job!r} failed in a worker: {type(exc).__name__}: {exc}") from exc


def _stop_pool(pool: ProcessPoolExecutor, clean: bool) -> None:
    """Shut the pool down; after an error or Ctrl-C, SIGTERM the workers (their handler closes the envs)."""
    if clean:
        pool.shutdown(wait=True)
        return
    procs = list(getattr(pool, "_processes", {}).values())  # no public handle on the pool's processes
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()


# ----------------------------------------------------------------------------- Ray
class _Actor:
    """A Ray actor owning one context (the same role as a pool process)."""

    def __init__(self, make_context: Callable[[], Any]):
        self.ctx = make_context()

    def run(self, fn: Callable[[Any, J], Any], job: J) -> Any:
        return fn(self.ctx, job)

    def close(self) -> None:
        _close(self.ctx)


def _ray_init(ray_mod: Any, address: str, workers: int) -> bool:
    """Connect to (or start) Ray; ``True`` when this call started it (so it is shut down afterwards)."""
    if ray_mod.is_initialized():
        return False
    if address == "local":
        ray_mod.init(num_cpus=resolve_workers(workers), include_dashboard=False, log_to_driver=False)
    else:
        ray_mod.init(address=address, log_to_driver=False)
    return True


def _ray_jobs(fn: Callable[[Any, J], Any], jobs: list[J], make_context: Callable[[], Any], workers: int,
              address: str) -> Iterator[tuple[J, Any]]:
    from agentrm_gym.extras import require_extra

    require_extra("ray", "dist", "--ray")
    import ray as ray_mod

    started = _ray_init(ray_mod, address, workers)
    n = workers if workers > 1 else max(1, int(ray_mod.cluster_resources().get("CPU", 1)))
    actor_cls = ray_mod.remote(num_cpus=1)(_Actor)
    actors = [actor_cls.remote(make_context) for _ in range(min(n, len(jobs)))]
    running: dict[Any, tuple[Any, J]] = {}
    queue = iter(jobs)
    try:
        for actor in actors:
            job = next(queue, None)
            if job is not None:
                running[actor.run.remote(fn, job)] = (actor, job)
        while running:
            ready, _ = ray_mod.wait(list(running), num_returns=1)
            actor, job = running.pop(ready[0])
            try:
                result = ray_mod.get(ready[0])
            except Exception as exc:
                raise JobFailed(f"job {job!r} failed on Ray: {type(exc).__name__}: {exc}") from exc
            yield job, result
            nxt = next(queue, None)
            if nxt is not None:
                running[actor.run.remote(fn, nxt)] = (actor, nxt)
    finally:
        for ref in running:  # interrupts a running job (a KeyboardInterrupt in the actor), then close runs
            try:
                ray_mod.cancel(ref)
            except Exception:  # noqa: BLE001 - already finished or not cancellable: close and kill anyway
                pass
        closing = [a.close.remote() for a in actors]
        try:
            ray_mod.wait(closing, num_returns=len(closing), timeout=30)
        finally:
            for a in actors:
                ray_mod.kill(a)
            if started:
                ray_mod.shutdown()
