"""``agentrm envs`` (the task table) and ``agentrm play`` (play any env in the terminal)."""

from __future__ import annotations

import typer

from agentrm_gym.core import CHECK_VALID_ACTIONS
from agentrm_gym.registry import TASKS, is_implemented, make, missing_requirements


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain monospaced table (also used for results tables)."""
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def envs() -> None:
    """List the task table: id, category, AgentRM role, test-set size, max steps, availability."""
    rows = []
    for spec in TASKS.values():
        if not is_implemented(spec):
            status = f"module {spec.module} not found"
        elif missing := missing_requirements(spec):
            status = f"needs [{spec.extra}] ({', '.join(missing)})"
        else:
            status = "ok"
        rows.append([spec.env_id, spec.category, spec.role, spec.test_size, spec.max_steps, status])
    typer.echo(format_table(["id", "category", "role", "test set", "max steps", "status"], rows))


def play(
    env_id: str = typer.Argument(..., help="env id or task name, e.g. agentrm/Maze-v0 or maze"),
    task_id: str = typer.Option(None, "--task-id", help="a task id (default: drawn from the split by --seed)"),
    split: str = typer.Option("test", help="train or test"),
    seed: int = typer.Option(0, help="seed for reset"),
) -> None:
    """Play an env in the terminal. Type a command; `expert` shows the oracle's action, `quit` exits."""
    env = make(env_id, split=split)
    try:
        options = {"task_id": task_id} if task_id else None
        obs, info = env.reset(seed=seed, options=options)
        typer.echo(f"Task {info['task_id']}\nGoal: {info['goal']}\n\n{obs}")
        done = False
        while not done:
            if info["admissible_actions"]:
                typer.echo(f"\n[admissible: {', '.join(info['admissible_actions'][:40])}]")
            try:
                command = input("> ").strip()
            except EOFError:
                break
            if command in ("quit", "exit"):
                break
            if command == "expert":
                typer.echo(f"expert: {env.unwrapped.expert_action()}")
                continue
            obs, reward, term, trunc, info = env.step(command or CHECK_VALID_ACTIONS)
            typer.echo(f"\n{obs}\n(reward {reward:+.3f}, progress {info['progress']:.3f}, valid {info['action_valid']})")
            done = term or trunc
        typer.echo(f"\nEpisode over: success={info['success']} progress={info['progress']:.3f}")
    finally:
        env.close()


def register(app: typer.Typer) -> None:
    app.command("envs")(envs)
    app.command("play")(play)
