"""``agentrm eval``: a policy with a planner on a task split; episodes.jsonl, results.json and a table.

The engine is :mod:`agentrm_gym.agents.evaluation` (:class:`EvalConfig`, :func:`run_eval`); this module
parses the options and prints the summary.
"""

from __future__ import annotations

from typing import Any

import typer

from agentrm_gym.agents.evaluation import EvalConfig, EvalError, run_eval
from agentrm_gym.cli.envs import format_table
from agentrm_gym.cli.rm import RM_HELP

__all__ = ["EvalConfig", "EvalError", "evaluate", "register", "results_table", "run_eval"]


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
    policy: str = typer.Option("oracle", help="oracle | random | noisy:P | a model dir/id | openai:URL[#model] | "
                                              "vllm:PATH | python:module:attr"),
    method: str = typer.Option("greedy", help="greedy | bon:N | beam:W1xW2 | mcts[:ITERS]"),
    rm: str = typer.Option(None, "--rm", help=RM_HELP),
    scorer: str = typer.Option(None, help="progress (env progress: oracle upper bound) | oracle (the task's own oracle scorer, e.g. Maze's BFS distance)"),
    split: str = typer.Option("test", help="train or test"),
    episodes: int = typer.Option(None, help="the first K tasks of the split (default: all)"),
    out: str = typer.Option(None, help="run directory (default runs/<task>__eval__<method>__<seed>__<time>)"),
    resume: bool = typer.Option(False, help="skip episodes already in OUT/episodes.jsonl"),
    overwrite: bool = typer.Option(False, help="start OUT/episodes.jsonl afresh"),
    seed: int = typer.Option(0, help="base seed (episode i uses seed + i)"),
    temperature: float = typer.Option(None, help="sampling temperature (default: 0 for greedy, 1 otherwise)"),
    max_new_tokens: int = typer.Option(64, help="generation limit of LLM policies"),
    max_steps: int = typer.Option(None, help="step budget (default: the env's max_episode_steps)"),
    workers: int = typer.Option(1, help="worker processes, each with its own env and policy (0: one per core)"),
    ray: str = typer.Option("", help="run the workers on Ray: local | auto | a cluster address (the dist extra)"),
    env_url: str = typer.Option("", "--env-url", help="play on the env server at this URL (agentrm serve env) "
                                                      "instead of in process; same episodes for the same seeds"),
    env_api_key: str = typer.Option(None, "--env-api-key", help="the env server's API key, if it has one"),
) -> None:
    """Evaluate a policy + planner: episodes.jsonl, results.json, TensorBoard scalars and a table."""
    cfg = EvalConfig(env, policy, method, rm, scorer, split, episodes, out, resume, overwrite, seed, temperature,
                     max_new_tokens, max_steps, workers, ray, env_url, env_api_key)
    try:
        results = run_eval(cfg)
    except EvalError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(results_table(results))
    typer.echo(f"wrote {results['out']}/episodes.jsonl and results.json")


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
