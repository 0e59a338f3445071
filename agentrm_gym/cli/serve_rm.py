"""``agentrm serve rm --rm PATH``: serve a saved reward model over HTTP (``/score``, ``/get_reward``)."""

from __future__ import annotations

import typer

from agentrm_gym.cli.groups import serve_app


def serve_rm(
    rm: str = typer.Option(..., "--rm", help="reward model: an RM or run directory, or python:module:attr "
                                             "(agentrm_gym.rm.make_reward_model)"),
    host: str = typer.Option("127.0.0.1", help="bind address"),
    port: int = typer.Option(8001, help="TCP port"),
    batch_size: int = typer.Option(32, help="states per model forward pass"),
    max_request_bytes: int = typer.Option(1_000_000, help="largest request body in bytes (413 above; 0: no limit)"),
    api_key: str = typer.Option(None, envvar="AGENTRM_API_KEY",
                                help="require 'Authorization: Bearer KEY' on every request but GET /health"),
) -> None:
    """Serve a reward model: POST /score (AgentState JSON), POST /get_reward (OpenRLHF), GET /health."""
    from agentrm_gym.rm import make_reward_model
    from agentrm_gym.serve.rm_server import serve

    model = make_reward_model(rm, batch_size=batch_size)
    typer.echo(f"serving {model.kind} RM from {rm} on http://{host}:{port} (/score, /get_reward, /health)")
    serve(model, host=host, port=port, max_request_bytes=max_request_bytes, api_key=api_key)


def register(app: typer.Typer) -> None:
    serve_app.command("rm")(serve_rm)
