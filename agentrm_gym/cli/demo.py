"""``agentrm demo`` (the AgentRM pipeline's demo preset, run by ``make demo``) and ``agentrm baselines``."""

from __future__ import annotations

import random

import typer
from tqdm import tqdm

from agentrm_gym.cli.envs import format_table
from agentrm_gym.cli.pipeline import RAY_OPT, WORKERS_OPT, scale_overrides
from agentrm_gym.registry import TASKS, get_spec, make, missing_requirements


def run_baseline(env_id: str, policy: str, episodes: int | None = None, seed: int = 0) -> dict[str, float]:
    """Success and progress rates of the ``oracle`` or ``random`` policy on the test split."""
    env = make(env_id, split="test")
    rng = random.Random(seed)
    try:
        task_ids = env.unwrapped.task_ids("test")[:episodes]
        success, progress = [], []
        for task_id in tqdm(task_ids, desc=f"{get_spec(env_id).name} {policy}", leave=False):
            obs, info = env.reset(seed=seed, options={"task_id": task_id})
            done = False
            while not done:
                if policy == "oracle":
                    action = env.unwrapped.expert_action()
                    if action is None:
                        break
                else:
                    action = rng.choice(info["admissible_actions"] or ["check valid actions"])
                obs, _, term, trunc, info = env.step(action)
                done = term or trunc
            success.append(info["success"])
            progress.append(info["progress"])
        return {"success_rate": 100 * sum(success) / len(success), "progress_rate": 100 * sum(progress) / len(progress),
                "episodes": len(task_ids)}
    finally:
        env.close()


def baselines(
    envs: str = typer.Option(",".join(TASKS), help="comma-separated task names"),
    episodes: int = typer.Option(None, help="episodes per env (default: the whole test split)"),
) -> None:
    """Oracle vs random agent on the test splits, as a table of success and progress rates."""
    rows = []
    for name in envs.split(","):
        if missing_requirements(get_spec(name.strip())):
            typer.echo(f"skipping {name}: its extra is not installed")
            continue
        for policy in ("oracle", "random"):
            r = run_baseline(name.strip(), policy, episodes)
            rows.append([get_spec(name.strip()).name, policy, r["episodes"], f"{r['success_rate']:.1f}",
                         f"{r['progress_rate']:.1f}"])
    typer.echo(format_table(["task", "policy", "episodes", "success %", "progress %"], rows))


def demo(
    out: str = typer.Option("runs/demo", "--out", help="run directory; re-running resumes it and skips finished stages"),
    overrides: list[str] = typer.Option([], "--set", help="override a pipeline config field, e.g. --set eval_episodes=4"),
    workers: int = WORKERS_OPT,
    ray: str = RAY_OPT,
) -> None:
    """The headline: expert -> SFT -> MCTS -> explicit RM on 3 held-in tasks -> greedy vs Best-of-5 on all 9."""
    from agentrm_gym.train.pipeline import preset, run_pipeline

    cfg = preset("demo").override(scale_overrides(overrides, workers, ray))
    typer.echo(f"run directory: {out} (agentrm table --out {out} prints the tables again)")
    record = run_pipeline(cfg, out, log=typer.echo)
    typer.echo(record.get("table_md", ""))
    write_demo_report(out)


def write_demo_report(out: str) -> None:
    """Write the run's report and print its path; a failure (no matplotlib, a plotting error) is one
    warning line, never a lost run: the results are already on disk."""
    try:
        from agentrm_gym.train.report import write_report

        typer.echo(f"report: {write_report(out)}")
    except Exception as exc:  # noqa: BLE001 - the report is a convenience, the run's files are what matter
        typer.echo(f"warning: no report ({type(exc).__name__}: {' '.join(str(exc).split())}); "
                   f"`agentrm report {out}` retries", err=True)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("baselines")(baselines)
