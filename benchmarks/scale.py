"""Scale-out: episodes/s of evaluation and trees/s of exploration, one process vs 2 workers vs local Ray.

The jobs are the pipeline's own (:func:`agentrm_gym.train.evaluate.episode_job`, greedy episodes on the
test split; :func:`agentrm_gym.train.explore.tree_job`, MCTS trees on the train split) played through
:func:`agentrm_gym.train.context.play`, the loop behind ``--workers`` and ``--ray``, on Maze, BabyAI and
WebShop. The policy is the cached tiny GPT-2 (``agents.tiny.tiny_policy_dir``, untrained: every episode
runs to its step cap, so the jobs are of even size and CPU-bound). Three settings, side by side in one run:

* ``1 process``: ``workers=1``, torch on every core (``threads=0``): the default before workers existed;
* ``1 process, 1 thread``: the same on one core (what each worker gets: the scaling baseline);
* ``2 workers``: two spawned processes, one torch thread each;
* ``ray 2 CPUs``: two Ray actors on a local Ray started with ``num_cpus=2``.

``wall s`` and ``jobs/s incl. start`` include starting the workers (spawn, imports, loading the policy:
seconds, paid once per stage); ``steady jobs/s`` counts the jobs after every worker's first result over the
time they took, and ``ratio`` is that over the 1-process steady rate of the same task and stage
(``vs 1 thread`` over the 1-thread one). A last table gives Ray's overhead per task: no-op jobs through the same actors.

    python benchmarks/scale.py [--episodes 24] [--trees 10] [--tasks Maze,BabyAI,WebShop]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from functools import partial
from pathlib import Path

from agentrm_gym.agents.tiny import tiny_policy_dir
from agentrm_gym.cli.envs import format_table
from agentrm_gym.parallel import run_jobs
from agentrm_gym.train.config import PipelineConfig
from agentrm_gym.train.context import StageContext, play
from agentrm_gym.train.evaluate import episode_job, eval_ids
from agentrm_gym.train.explore import tree_job

SETTINGS = [("1 process", {"workers": 1}), ("1 process, 1 thread", {"workers": 1, "threads": 1}),
            ("2 workers", {"workers": 2}), ("ray 2 CPUs", {"workers": 2, "ray": "auto"})]


def noop(ctx: object, job: int) -> int:
    return job


def measure(cfg: PipelineConfig, root: Path, fn, jobs: list, split: str) -> list[float]:
    """Seconds from the start to each result of playing ``jobs`` with ``cfg``'s workers."""
    ctx = StageContext(cfg.to_dict(), root, threads=cfg.threads)
    by_task = {}
    for job in jobs:
        by_task.setdefault(job[0], []).append(job)
    t0 = time.perf_counter()
    times = []
    try:
        for _ in play(ctx, fn, list(by_task), lambda task: by_task[task], f"{split} x{cfg.workers}"):
            times.append(time.perf_counter() - t0)
    finally:
        ctx.close()
    return times


def steady_rate(times: list[float], workers: int) -> float:
    """Jobs/s after every worker has delivered once (start-up excluded): (n - w) / (t_n - t_w)."""
    w = min(workers, len(times) - 1)
    return (len(times) - w) / max(1e-9, times[-1] - times[w - 1]) if w >= 1 else len(times) / times[-1]


def ids_of(task: str, split: str, k: int, skip: int = 0) -> list[str]:
    from agentrm_gym.registry import make

    env = make(task, split=split)
    try:
        ids = [str(i) for i in env.unwrapped.task_ids(split)]
    finally:
        env.close()
    return eval_ids(ids[skip:], k)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=24, help="greedy test episodes per task")
    ap.add_argument("--trees", type=int, default=10, help="MCTS trees per task")
    ap.add_argument("--tasks", default="Maze,BabyAI,WebShop")
    ap.add_argument("--steps", type=int, default=10, help="step cap of an episode")
    args = ap.parse_args()
    import ray

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    policy = str(tiny_policy_dir(("Maze",)))
    base = PipelineConfig(policy=policy, max_new_tokens=16, eval_max_steps=args.steps, explore_max_steps=args.steps,
                          mcts_iterations=4, mcts_k=2, temperature=0.5, threads=0)
    root = Path(tempfile.mkdtemp(prefix="scale-"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows = []
    try:
        for task in tasks:
            work = {"eval": (episode_job, [(task, "greedy", i) for i in ids_of(task, "test", args.episodes)], "test"),
                    "explore": (tree_job, [(task, i) for i in ids_of(task, "train", args.trees, skip=40)], "train")}
            for stage, (fn, jobs, split) in work.items():
                runs = {name: measure(base.replace(**changes), root, fn, jobs, split) for name, changes in SETTINGS}
                rates = {name: steady_rate(runs[name], changes["workers"]) for name, changes in SETTINGS}
                for name, times in runs.items():
                    rows.append([task, stage, name, len(jobs), f"{times[-1]:.1f}", f"{len(jobs) / times[-1]:.2f}",
                                 f"{rates[name]:.2f}", f"{rates[name] / rates['1 process']:.2f}x",
                                 f"{rates[name] / rates['1 process, 1 thread']:.2f}x"])
                    print(" | ".join(map(str, rows[-1])), flush=True)
        overhead = []
        actors_make = partial(StageContext, base.to_dict(), str(root), 1)
        for n in (20, 200):
            t0 = time.perf_counter()
            list(run_jobs(noop, range(n), actors_make, workers=2, ray="auto", progress_bar=False))
            overhead.append((n, time.perf_counter() - t0))
    finally:
        ray.shutdown()
    print()
    print(format_table(["task", "stage", "setting", "jobs", "wall s", "jobs/s incl. start", "steady jobs/s",
                        "ratio", "vs 1 thread"], rows))
    (n1, t1), (n2, t2) = overhead
    per_task = (t2 - t1) / (n2 - n1)
    print()
    print(format_table(["ray no-op jobs", "wall s"], [[n1, f"{t1:.2f}"], [n2, f"{t2:.2f}"]]))
    print(f"ray overhead per task: {1000 * per_task:.1f} ms (actor start-up and policy-free context: "
          f"{max(0.0, t1 - n1 * per_task):.1f} s)")
    print(f"cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
