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
) -> None:
    """Serve /v1/models, /v1/completions and /v1/chat/completions for MODEL."""
    from agentrm_gym.serve.policy_server import serve

    serve(model, host=host, port=port, device=device, model_name=name)


def register(app: typer.Typer) -> None:
    """The command lives in the ``serve`` group (added to the app by ``agentrm_gym.cli``)."""
    serve_app.command("policy")(serve_policy)
