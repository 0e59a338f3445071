"""Env-server throughput and latency: steps/s and p50/p95 per step at 1, 8 and 64 concurrent sessions.

Run: ``.venv/bin/python benchmarks/env_server.py [--task Maze] [--sessions 1,8,64] [--seconds 10]
[--transport http,ws]``.

The server is ``agentrm serve env`` in its own process on loopback; each session is a client thread with its
own ``agentrm/Remote-v0`` env (``http``: the ``/sessions`` routes) or an asyncio task speaking OpenEnv's
WebSocket protocol (``ws``: ``/ws``), stepping random admissible actions and resetting at episode end.
The first row is the same loop in process (one env, no server). A latency is one ``step`` as the client
sees it. After each row the server must hold no session and no snapshot, and its RSS and child-process
count are printed before and after (a leak shows as growth across rows). A snapshot + restore pair (what a
search planner pays per branch) is timed at the end. Wall time on a shared CPU is inflated; the load
average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import psutil

from agentrm_gym.core import restore, snapshot
from agentrm_gym.envs.remote import make_remote
from agentrm_gym.registry import make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(task: str, sessions: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    agentrm = os.path.join(os.path.dirname(sys.executable), "agentrm")
    proc = subprocess.Popen([agentrm, "serve", "env", "--tasks", task, "--port", str(port), "--max-sessions",
                             str(max(sessions, 1) + 4)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the env server did not start")


def pick(rng: np.random.Generator, info: dict) -> str:
    acts = info.get("admissible_actions") or ["check valid actions"]
    return acts[int(rng.integers(len(acts)))]


def in_process(task: str, seconds: float) -> list[float]:
    env, rng, lat = make(task, split="test"), np.random.default_rng(0), []
    _, info = env.reset(seed=0)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        _, _, term, trunc, info = env.step(pick(rng, info))
        lat.append(time.perf_counter() - t)
        if term or trunc:
            _, info = env.reset()
    env.close()
    return lat


def http_sessions(url: str, task: str, n: int, seconds: float) -> tuple[list[float], int]:
    lats: list[list[float]] = [[] for _ in range(n)]
    errors = [0]
    barrier = threading.Barrier(n)

    def worker(i: int) -> None:
        env, rng = make_remote(url, task), np.random.default_rng(i)
        try:
            _, info = env.reset(seed=i)
            barrier.wait()
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t = time.perf_counter()
                _, _, term, trunc, info = env.step(pick(rng, info))
                lats[i].append(time.perf_counter() - t)
                if term or trunc:
                    _, info = env.reset()
        except Exception:
            errors[0] += 1
            raise
        finally:
            env.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for lat in lats for x in lat], errors[0]


def ws_sessions(url: str, task: str, n: int, seconds: float) -> tuple[list[float], int]:
    from websockets.asyncio.client import connect

    lats: list[float] = []
    errors = [0]

    async def worker(i: int, start: asyncio.Event) -> None:
        rng = np.random.default_rng(i)
        try:
            async with connect(url.replace("http", "ws") + "/ws", max_size=2**24) as ws:
                async def call(message: dict) -> dict:
                    await ws.send(json.dumps(message))
                    reply = json.loads(await ws.recv())
                    if reply.get("type") == "error":
                        raise RuntimeError(reply["data"])
                    return reply["data"]

                obs = (await call({"type": "reset", "data": {"task": task, "seed": i}}))["observation"]
                await start.wait()
                end = time.perf_counter() + seconds
                while time.perf_counter() < end:
                    t = time.perf_counter()
                    data = await call({"type": "step", "data": {"command": pick(rng, obs)}})
                    lats.append(time.perf_counter() - t)
                    obs = data["observation"]
                    if data["done"]:
                        obs = (await call({"type": "reset", "data": {"task": task}}))["observation"]
        except Exception:
            errors[0] += 1
            raise

    async def main() -> None:
        start = asyncio.Event()
        tasks = [asyncio.create_task(worker(i, start)) for i in range(n)]
        await asyncio.sleep(0.5 + 0.02 * n)  # let every session connect and reset first
        start.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    return lats, errors[0]


def server_usage(proc: subprocess.Popen) -> tuple[float, int]:
    p = psutil.Process(proc.pid)
    return p.memory_info().rss / 2**20, len(p.children(recursive=True))


def row(name: str, n: int, lat: list[float], seconds: float, errors: int, usage: str = "") -> list[str]:
    ms = np.array(lat) * 1000 if lat else np.zeros(1)
    return [name, str(n), f"{len(lat) / seconds:.0f}", f"{np.percentile(ms, 50):.2f}", f"{np.percentile(ms, 95):.2f}",
            str(errors), usage]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="Maze")
    ap.add_argument("--sessions", default="1,8,64")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--transport", default="http,ws")
    args = ap.parse_args()
    counts = [int(x) for x in args.sessions.split(",")]
    rows = [row("in-process", 1, in_process(args.task, args.seconds), args.seconds, 0)]
    proc, url = start_server(args.task, max(counts))
    try:
        for transport in args.transport.split(","):
            for n in counts:
                before = server_usage(proc)
                run = http_sessions if transport == "http" else ws_sessions
                lat, errors = run(url, args.task, n, args.seconds)
                time.sleep(0.5)
                cap = httpx.get(url + "/capacity").json()
                after = server_usage(proc)
                left = f" LEFT {cap['active_sessions']} sessions" if cap["active_sessions"] or cap["snapshots"] else ""
                usage = f"{before[0]:.0f}->{after[0]:.0f} MiB, {before[1]}->{after[1]} children{left}"
                rows.append(row(f"server/{transport}", n, lat, args.seconds, errors, usage))
        env, pairs = make_remote(url, args.task), []
        env.reset(seed=0)
        for _ in range(200):
            t = time.perf_counter()
            restore(env, snapshot(env))
            pairs.append(time.perf_counter() - t)
        env.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    header = ["mode", "sessions", "steps/s", "p50 ms", "p95 ms", "errors", "server RSS, child processes"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"task {args.task}, {args.seconds:g} s a row, loopback, load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} CPUs")
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    ms = np.array(pairs) * 1000
    print(f"snapshot + restore over HTTP (1 session): p50 {np.percentile(ms, 50):.2f} ms, "
          f"p95 {np.percentile(ms, 95):.2f} ms")


if __name__ == "__main__":
    main()
