"""WebShop at scale: catalogue build time and size, and top-k search latency beside the exhaustive search.

Usage::

    python benchmarks/webshop_scale.py                         # 10k, 100k and 1.18M products
    python benchmarks/webshop_scale.py --sizes 10000,50000     # a quick smoke run
    python benchmarks/webshop_scale.py --fresh                 # build cold in a temporary directory

For each size the catalogue is built (wall and CPU seconds) or, if ``$AGENTRM_CACHE`` already holds it,
reused (the table says ``cached`` and shows the build time recorded in the file); ``reopen`` is what a
second ``gym.make`` pays for it (the file check and the env's construction). Then the searches of the 200
test goals (the instruction without its price clause for even ids, the oracle's key terms for odd ids)
are timed through ``Catalogue.search`` (top-k above 10,000 products, :mod:`agentrm_gym.envs.webshop.topk`;
exhaustive at and below) and, as the anchor, through ``Catalogue.search_exhaustive`` (FTS5's ``bm25()``
on every match, the only search before bulk catalogues), the same queries in the same run, taking turns query
by query; ``x`` is the anchor's median over the search's, in wall and in CPU time. ``recall@k`` is the share of the exhaustive top k that the search
returns; ``oracle`` the expert's success on the 200 test goals at that size.

Wall-clock latency is inflated on a shared machine: the search's CPU time (``time.thread_time``) and the
load average are printed beside it.
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


def timed(searches: list, queries: list[str]) -> list[tuple[list[list[str]], list[float], list[float]]]:
    """Per search function: results, wall ms and CPU ms on each query. The functions take turns on each
    query, the first one alternating (the second finds the query's pages cached), after 20 untimed warm-up
    queries each, so they see the same load and the same caches."""
    for q in queries[:20]:
        for search in searches:
            search(q)
    out: list[tuple[list, list[float], list[float]]] = [([], [], []) for _ in searches]
    for k, q in enumerate(queries):
        turns = list(zip(searches, out, strict=True))
        for search, (results, wall, cpu) in turns if k % 2 == 0 else turns[::-1]:
            t0, c0 = time.perf_counter(), time.thread_time()
            results.append(search(q))
            cpu.append((time.thread_time() - c0) * 1000)
            wall.append((time.perf_counter() - t0) * 1000)
    return out


def recall(ours: list[list[str]], anchor: list[list[str]], k: int) -> float:
    shares = [len(set(a[:k]) & set(b[:k])) / len(b[:k]) for a, b in zip(ours, anchor, strict=True) if b]
    return statistics.mean(shares) if shares else 1.0


def measure(size: int, seed: int, num_queries: int, anchor_max: int) -> dict[str, str]:
    from agentrm_gym.envs.webshop import WebShopEnv, catalogue
    from agentrm_gym.envs.webshop.goals import search_text

    path = catalogue.catalogue_path(size, seed)
    if path.exists() and catalogue.catalogue_problem(path, size, seed) is None:
        build = f"cached (built in {float(catalogue.Catalogue(path).meta()['build_seconds']):.1f} s)"
    else:
        t0, c0 = time.perf_counter(), time.process_time()
        catalogue.build_catalogue(path, size, seed, progress=False)
        build = f"{time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU"
    catalogue._VERIFIED.clear()  # time a second make as a new process would pay it
    t0 = time.perf_counter()
    env = WebShopEnv(split="test", num_products=size, catalogue_seed=seed)
    reopen = time.perf_counter() - t0
    cat = env.catalogue
    goals = [env.goals.goal(t) for t in env.task_ids("test")]
    queries = [search_text(g.instruction) if k % 2 == 0 else g.keywords
               for k, g in enumerate(goals * (num_queries // len(goals) + 1))][:num_queries]
    with_anchor = size <= anchor_max
    timings = timed([cat.search, cat.search_exhaustive] if with_anchor else [cat.search], queries)
    results, wall, cpu = timings[0]
    row = {
        "products": f"{size:,}", "search": "top-k (bulk)" if cat.layout == "bulk" else "exhaustive (rows)",
        "build": build, "disk MiB": f"{path.stat().st_size / 2**20:.0f}", "reopen s": f"{reopen:.2f}",
        "search ms median / p95": f"{statistics.median(wall):.2f} / {percentile(wall, 0.95):.2f}",
        "CPU ms median": f"{statistics.median(cpu):.2f}",
    }
    if with_anchor:
        anchor, a_wall, a_cpu = timings[1]
        row["anchor: exhaustive ms median / p95"] = f"{statistics.median(a_wall):.2f} / {percentile(a_wall, 0.95):.2f}"
        row["anchor CPU ms median"] = f"{statistics.median(a_cpu):.2f}"
        row["x wall / CPU"] = (f"{statistics.median(a_wall) / statistics.median(wall):.1f}x / "
                               f"{statistics.median(a_cpu) / statistics.median(cpu):.1f}x")
        row["recall@10 / @50"] = f"{recall(results, anchor, 10):.3f} / {recall(results, anchor, 50):.3f}"
    wins = 0
    for task_id in env.task_ids("test"):
        env.reset(options={"task_id": task_id})
        term, info = False, {}
        while not term and env.steps < 10:
            _, _, term, _, info = env.step(env.expert_action() or "")
        wins += bool(info["success"])
    row["oracle"] = f"{wins / len(goals):.3f}"
    env.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1180000", help="comma-separated catalogue sizes")
    parser.add_argument("--queries", type=int, default=200, help="timed searches per size")
    parser.add_argument("--seed", type=int, default=0, help="catalogue seed")
    parser.add_argument("--anchor-max", type=int, default=2_000_000,
                        help="largest size at which the exhaustive search (the anchor) is timed too")
    parser.add_argument("--fresh", action="store_true",
                        help="build every catalogue cold in a temporary directory (the cache is left alone)")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    with tempfile.TemporaryDirectory() as tmp:
        if args.fresh:
            os.environ["AGENTRM_CACHE"] = tmp
        rows = []
        for size in sizes:
            rows.append(measure(size, args.seed, args.queries, args.anchor_max))
            print(f"# {size:,} products done", flush=True)
        cache = Path(os.environ.get("AGENTRM_CACHE", "~/.cache/agentrm_gym")).expanduser()

    columns = list(dict.fromkeys(k for r in rows for k in r))
    print(f"\ncache: {'a temporary directory (--fresh)' if args.fresh else cache}; "
          f"load average (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(r.get(c, "-") for c in columns) + " |")


if __name__ == "__main__":
    main()
