"""``agentrm eval``: run a policy with a planner on a task split and write trajectories and rates.

Writes, under ``--out`` (default ``runs/<task>__eval__<method>__<seed>__<time>``):

* ``episodes.jsonl`` - one trajectory record a line (DESIGN.md section 3; ``meta.cost`` holds the
  planner's cost counters), appended as episodes finish;
* ``results.json`` - success rate and progress rate (in %) and the mean cost per episode;
* ``tb/`` - TensorBoard scalars ``charts/success_rate``, ``charts/progress_rate`` (and per-episode
  ``episode/progress``), when TensorBoard is installed.

``--resume`` skips the episodes already in ``episodes.jsonl`` (a line cut short by an interruption is
dropped and its episode run again). Search methods need values: ``--rm PATH`` (a reward model loaded by
``agentrm_gym.rm.load_reward_model``) or ``--scorer progress`` (the env's own progress rate: an oracle
upper bound, not a deployable agent) or ``--scorer maze-distance`` (Maze only, oracle).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer
from tqdm import tqdm

from agentrm_gym.cli.envs import format_table
from agentrm_gym.trajectory import append_jsonl, read_jsonl

SCORERS = ("progress", "maze-distance")


class EvalError(ValueError):
    """A bad combination of eval options (the message says what to pass instead)."""


@dataclass
class EvalConfig:
    """Options of one evaluation run (the same fields as the CLI)."""

    env: str = "Maze"
    policy: str = "oracle"
    method: str = "greedy"
    rm: str | None = None
    scorer: str | None = None
    split: str = "test"
    episodes: int | None = None
    out: str | None = None
    resume: bool = False
    overwrite: bool = False
    seed: int = 0
    temperature: float | None = None
    max_new_tokens: int = 64
    max_steps: int | None = None


def load_scorer(cfg: EvalConfig) -> Any:
    """The scorer a search method uses: the reward model of ``--rm``, a named oracle scorer, or ``None``."""
    if cfg.rm and cfg.scorer:
        raise EvalError("pass either --rm or --scorer, not both")
    if cfg.rm:
        try:
            from agentrm_gym.rm import load_reward_model
        except ImportError as exc:
            raise EvalError("--rm needs agentrm_gym.rm.load_reward_model, which this install does not have "
                            "(the reward-model module is missing); use --scorer progress meanwhile") from exc
        return load_reward_model(cfg.rm)
    if cfg.scorer == "progress":
        from agentrm_gym.agents.scorers import ProgressScorer

        return ProgressScorer()
    if cfg.scorer == "maze-distance":
        from agentrm_gym.agents.scorers import MazeDistanceScorer

        return MazeDistanceScorer()
    if cfg.scorer:
        raise EvalError(f"unknown --scorer {cfg.scorer!r}; use one of {', '.join(SCORERS)}")
    if cfg.method.split(":")[0] != "greedy":
        raise EvalError(f"--method {cfg.method} ranks states: pass --rm PATH (a reward model) or "
                        "--scorer progress (the env's own progress, an oracle upper bound)")
    return None


def _repair(path: Path) -> list[dict[str, Any]]:
    """The complete records of ``path``, rewriting it without a cut-short last line."""
    if not path.exists():
        return []
    records = list(read_jsonl(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return records


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Success and progress rates (%) and the mean cost per episode of trajectory records."""
    if not records:
        return {"episodes": 0, "success_rate": 0.0, "progress_rate": 0.0, "cost_per_episode": {}}
    costs = [r.get("meta", {}).get("cost", {}) for r in records]
    keys = sorted({k for c in costs for k in c})
    return {
        "episodes": len(records),
        "success_rate": 100.0 * float(np.mean([bool(r["success"]) for r in records])),
        "progress_rate": 100.0 * float(np.mean([float(r["progress"]) for r in records])),
        "cost_per_episode": {k: float(np.mean([c.get(k, 0.0) for c in costs])) for k in keys},
    }


def _tensorboard(logdir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        try:
            from tensorboardX import SummaryWriter  # type: ignore[no-redef]
        except ImportError:
            return None
    return SummaryWriter(str(logdir))


def run_eval(cfg: EvalConfig, planner_factory: Callable[..., Any] | None = None,
             progress_bar: bool = True) -> dict[str, Any]:
    """Run the evaluation of ``cfg``; returns the results dict (also written to ``results.json``)."""
    from agentrm_gym.agents.planners import make_planner
    from agentrm_gym.agents.policy import make_policy
    from agentrm_gym.registry import get_spec, make

    spec = get_spec(cfg.env)
    scorer = load_scorer(cfg)
    out = Path(cfg.out or f"runs/{spec.name}__eval__{cfg.method.replace(':', '-')}__{cfg.seed}__{int(time.time())}")
    out.mkdir(parents=True, exist_ok=True)
    episodes_path = out / "episodes.jsonl"
    if episodes_path.exists() and episodes_path.stat().st_size and not cfg.resume:
        if not cfg.overwrite:
            raise EvalError(f"{episodes_path} already has episodes: pass --resume to continue it or --overwrite")
        episodes_path.unlink()
    done = {r["task_id"] for r in _repair(episodes_path)}

    env = make(spec.name, split=cfg.split)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    try:
        task_ids = env.unwrapped.task_ids(cfg.split)[: cfg.episodes]
        todo = [(i, t) for i, t in enumerate(task_ids) if t not in done]
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        if todo:
            policy = make_policy(cfg.policy, seed=cfg.seed, **(
                {"max_new_tokens": cfg.max_new_tokens} if cfg.policy not in ("oracle", "random")
                and not cfg.policy.startswith("noisy:") else {}))
            factory = planner_factory or make_planner
            planner = factory(cfg.method, policy, scorer, temperature=cfg.temperature, max_steps=cfg.max_steps)
            bar = tqdm(todo, desc=f"{spec.name} {cfg.method}", disable=not progress_bar, leave=False)
            for index, task_id in bar:
                result = planner.run(env, task_id, seed=cfg.seed + index)
                traj = result.trajectory
                traj.meta = {**traj.meta, "episode": index, "method": cfg.method}
                append_jsonl(episodes_path, [traj])
                bar.set_postfix(progress=f"{traj.progress:.2f}")
            policy.close()
    finally:
        env.close()

    records = list(read_jsonl(episodes_path)) if episodes_path.exists() else []
    order = {t: i for i, t in enumerate(task_ids)}
    records = sorted((r for r in records if r["task_id"] in order), key=lambda r: order[r["task_id"]])
    results = {"env": spec.env_id, "policy": cfg.policy, "method": cfg.method, "split": cfg.split,
               "scorer": cfg.rm or cfg.scorer, "skipped": len(done & set(task_ids)), **summarize(records)}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    writer = _tensorboard(out / "tb")
    if writer is not None:
        writer.add_text("hyperparameters", json.dumps(asdict(cfg)))
        for r in records:
            writer.add_scalar("episode/progress", float(r["progress"]), order[r["task_id"]])
        writer.add_scalar("charts/success_rate", results["success_rate"], len(records))
        writer.add_scalar("charts/progress_rate", results["progress_rate"], len(records))
        writer.close()
    results["out"] = str(out)
    return results


def results_table(results: dict[str, Any]) -> str:
    """The printed summary table of :func:`run_eval`'s results."""
    cost = results.get("cost_per_episode", {})
    header = ["env", "policy", "method", "episodes", "success %", "progress %", "env steps", "policy calls",
              "tokens", "scorer calls", "seconds"]
    row = [results["env"], results["policy"], results["method"], results["episodes"],
           f"{results['success_rate']:.1f}", f"{results['progress_rate']:.1f}",
           f"{cost.get('env_steps', 0):.1f}", f"{cost.get('policy_calls', 0):.1f}",
           f"{cost.get('generated_tokens', 0):.0f}", f"{cost.get('scorer_calls', 0):.1f}",
           f"{cost.get('wall_seconds', 0):.2f}"]
    return format_table(header, [row])


def evaluate(
    env: str = typer.Option(..., "--env", help="env id or task name, e.g. agentrm/Maze-v0 or Maze"),
    policy: str = typer.Option("oracle", help="oracle | random | noisy:P | a model dir/id | openai:URL[#model] | vllm:PATH"),
    method: str = typer.Option("greedy", help="greedy | bon:N | beam:W1xW2 | mcts[:ITERS]"),
    rm: str = typer.Option(None, "--rm", help="a reward model directory (agentrm_gym.rm.load_reward_model)"),
    scorer: str = typer.Option(None, help="progress (env progress: oracle upper bound) | maze-distance"),
    split: str = typer.Option("test", help="train or test"),
    episodes: int = typer.Option(None, help="the first K tasks of the split (default: all)"),
    out: str = typer.Option(None, help="run directory (default runs/<task>__eval__<method>__<seed>__<time>)"),
    resume: bool = typer.Option(False, help="skip episodes already in OUT/episodes.jsonl"),
    overwrite: bool = typer.Option(False, help="start OUT/episodes.jsonl afresh"),
    seed: int = typer.Option(0, help="base seed (episode i uses seed + i)"),
    temperature: float = typer.Option(None, help="sampling temperature (default: 0 for greedy, 1 otherwise)"),
    max_new_tokens: int = typer.Option(64, help="generation limit of LLM policies"),
    max_steps: int = typer.Option(None, help="step budget (default: the env's max_episode_steps)"),
) -> None:
    """Evaluate a policy + planner: episodes.jsonl, results.json, TensorBoard scalars and a table."""
    cfg = EvalConfig(env, policy, method, rm, scorer, split, episodes, out, resume, overwrite, seed, temperature,
                     max_new_tokens, max_steps)
    try:
        results = run_eval(cfg)
    except EvalError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(results_table(results))
    typer.echo(f"wrote {results['out']}/episodes.jsonl and results.json")


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
