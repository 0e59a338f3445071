"""``agentrm serve policy``: an OpenAI-compatible server for a transformers model."""

from __future__ import annotations

import typer

from agentrm_gym.cli.groups import serve_app


def serve_policy(
    model: str = typer.Option(..., "--model", help="a causal-LM directory or model id"),
    host: str = typer.Option("127.0.0.1", help="bind address"),
    port: int = typer.Option(8000, help="port"),
    device: str = typer.Option(None, help="cpu, cuda, ... (default: CUDA when available)"),
    name: str = typer.Option(None, help="the model name clients use (default: --model)"),
    max_request_bytes: int = typer.Option(1_000_000, help="largest request body in bytes (413 above; 0: no limit)"),
    api_key: str = typer.Option(None, envvar="AGENTRM_API_KEY",
                                help="require 'Authorization: Bearer KEY' on every request but GET /health"),
) -> None:
    """Serve /v1/models, /v1/completions and /v1/chat/completions for MODEL."""
    from agentrm_gym.serve.policy_server import serve

    serve(model, host=host, port=port, device=device, model_name=name, max_request_bytes=max_request_bytes,
          api_key=api_key)


def register(app: typer.Typer) -> None:
    """The command lives in the ``serve`` group (added to the app by ``agentrm_gym.cli``)."""
    serve_app.command("policy")(serve_policy)
