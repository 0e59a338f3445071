"""``agentrm serve env``: the tasks as an OpenEnv server whose sessions can be snapshotted, restored, forked."""

from __future__ import annotations

import typer

from agentrm_gym.cli.groups import serve_app


def serve_env(
    tasks: list[str] = typer.Option(None, "--tasks", help="task names or ids to serve (repeat; default: all "
                                                          "installed); the first is the default of reset"),
    host: str = typer.Option("127.0.0.1", help="bind address"),
    port: int = typer.Option(8002, help="TCP port"),
    max_sessions: int = typer.Option(64, help="live sessions (WebSocket and HTTP); 429 beyond"),
    max_snapshots: int = typer.Option(16384, help="live snapshot tokens in all (least recently used evicted)"),
    max_snapshots_per_session: int = typer.Option(2048, help="live snapshot tokens per session"),
    idle_timeout: float = typer.Option(600.0, help="seconds idle before a session (and its simulator) is closed; "
                                                   "0: never"),
    max_request_bytes: int = typer.Option(1_000_000, help="largest request body / WebSocket message (413 above; "
                                                          "0: no limit)"),
    api_key: str = typer.Option(None, envvar="AGENTRM_API_KEY",
                                help="require 'Authorization: Bearer KEY' on every request but GET /health"),
) -> None:
    """Serve the envs over OpenEnv (/ws, /reset, /step, /state, /schema) plus /sessions snapshot/restore/fork."""
    from agentrm_gym.serve.env_server import resolve_tasks, serve

    names = resolve_tasks([t for item in tasks or [] for t in item.split(",") if t.strip()])
    typer.echo(f"serving {', '.join(names)} on http://{host}:{port} (OpenEnv /ws /reset /step /state /schema; "
               "/sessions/{id}/snapshot|restore|fork; docs/serving.md)")
    serve(names, host=host, port=port, max_sessions=max_sessions, max_snapshots=max_snapshots,
          max_snapshots_per_session=max_snapshots_per_session, idle_timeout=idle_timeout or None,
          max_request_bytes=max_request_bytes, api_key=api_key)


def register(app: typer.Typer) -> None:
    serve_app.command("env")(serve_env)
