"""WebShop catalogue benchmark: build time, size, FTS5/BM25 search latency, oracle score and env steps/s.

Run: ``.venv/bin/python benchmarks/webshop_search.py [--num-products 10000] [--queries 300]``.
The catalogue is built fresh into a temporary directory (the cache is left alone), then queried with
realistic searches: goal instructions (train and test) and the oracle's key-term searches. Wall-clock
latency is inflated on a shared machine; the search's CPU time (``time.thread_time``) and the load
average are printed beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-products", type=int, default=10_000, help="catalogue size")
    parser.add_argument("--queries", type=int, default=300, help="number of timed searches")
    parser.add_argument("--seed", type=int, default=0, help="catalogue seed")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AGENTRM_CACHE"] = tmp  # build fresh, leave the user's cache alone
        from agentrm_gym.envs.webshop import WebShopEnv
        from agentrm_gym.envs.webshop.catalogue import build_catalogue, catalogue_path
        from agentrm_gym.envs.webshop.goals import search_text

        path: Path = catalogue_path(args.num_products, args.seed)
        c0 = time.process_time()
        build_s = build_catalogue(path, args.num_products, args.seed, progress=False)
        build_cpu = time.process_time() - c0
        size_mb = path.stat().st_size / 2**20

        env = WebShopEnv(split="test", num_products=args.num_products, catalogue_seed=args.seed)
        cat = env.catalogue
        queries: list[str] = []
        k = 0
        while len(queries) < args.queries:
            split = "test" if k % 2 == 0 else "train"
            goal = env.goals.goal(f"{split}-{k // 2 % (200 if split == 'test' else 5000)}")
            queries.append(search_text(goal.instruction) if k % 3 else goal.keywords)
            k += 1
        for q in queries[:20]:  # warm the page cache
            cat.search(q)
        latencies = []
        cpu = []
        hits = []
        for q in queries:
            t0, c0 = time.perf_counter(), time.thread_time()
            hits.append(len(cat.search(q)))
            cpu.append((time.thread_time() - c0) * 1000)
            latencies.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        steps = wins = 0
        progress = []
        for task_id in env.task_ids("test"):
            env.reset(options={"task_id": task_id})
            term = False
            info: dict = {}
            while not term and env.steps < 10:
                _, _, term, _, info = env.step(env.expert_action() or "")
                steps += 1
            wins += bool(info["success"])
            progress.append(info["progress"])
        oracle_s = time.perf_counter() - t0
        env.close()

    rows = [
        ("products", f"{args.num_products:,}"),
        ("catalogue file", f"{size_mb:.1f} MiB"),
        ("build time (generate + SQLite/FTS5)", f"{build_s:.2f} s wall, {build_cpu:.2f} s CPU"),
        ("searches timed", f"{len(latencies)} (mean {statistics.mean(hits):.1f} results)"),
        ("search latency median", f"{statistics.median(latencies):.2f} ms"),
        ("search latency p90", f"{percentile(latencies, 0.9):.2f} ms"),
        ("search CPU time median / p90", f"{statistics.median(cpu):.2f} / {percentile(cpu, 0.9):.2f} ms"),
        ("load average (1 min) / CPU cores", f"{os.getloadavg()[0]:.1f} / {os.cpu_count()}"),
        ("oracle success (200 test goals)", f"{wins / 200:.3f}"),
        ("oracle progress (mean)", f"{statistics.mean(progress):.3f}"),
        ("oracle steps/episode", f"{steps / 200:.2f}"),
        ("env steps/s (oracle, incl. search)", f"{steps / oracle_s:.0f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'metric':<{width}} | value")
    print(f"{'-' * width}-+-{'-' * 24}")
    for name, value in rows:
        print(f"{name:<{width}} | {value}")


if __name__ == "__main__":
    main()
