"""An OpenAI-compatible HTTP server for a transformers causal LM (``agentrm serve policy``).

Endpoints (the subset of the OpenAI API that agents and ``vllm serve`` clients use):

* ``GET /v1/models`` - the served model;
* ``POST /v1/completions`` - ``prompt`` (string or list), ``n``, ``temperature``, ``top_p``,
  ``max_tokens``, ``stop``, ``logprobs`` (int: per-token log-probs are returned), ``seed``;
* ``POST /v1/chat/completions`` - ``messages`` rendered with the tokenizer's chat template (the plain
  format of :mod:`agentrm_gym.agents.prompts` where it has none), ``n``, ``temperature``, ``top_p``,
  ``max_tokens``, ``stop``, ``logprobs`` (bool), ``seed``.

All samples of a request come from one batched ``generate`` call
(:class:`agentrm_gym.agents.hf.HFGenerator`); requests are served one at a time.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from agentrm_gym.extras import is_available, require_extra

# request schemas live at module level so FastAPI can resolve the (string) annotations
if is_available("pydantic"):  # pydantic comes with fastapi ([serve] extra)
    from pydantic import BaseModel, Field

    class CompletionRequest(BaseModel):
        model: str | None = None
        prompt: str | list[str]
        n: int = Field(1, ge=1, le=128)
        temperature: float = Field(1.0, ge=0.0, le=5.0)
        top_p: float = Field(1.0, gt=0.0, le=1.0)
        max_tokens: int = Field(16, ge=1, le=4096)
        stop: str | list[str] | None = None
        logprobs: int | None = None
        seed: int | None = None

    class ChatMessage(BaseModel):
        role: str
        content: str

    class ChatRequest(BaseModel):
        model: str | None = None
        messages: list[ChatMessage]
        n: int = Field(1, ge=1, le=128)
        temperature: float = Field(1.0, ge=0.0, le=5.0)
        top_p: float = Field(1.0, gt=0.0, le=1.0)
        max_tokens: int | None = Field(None, ge=1, le=4096)
        max_completion_tokens: int | None = Field(None, ge=1, le=4096)
        stop: str | list[str] | None = None
        logprobs: bool = False
        top_logprobs: int | None = None
        seed: int | None = None


def _require_serve() -> None:
    require_extra(("fastapi", "uvicorn"), "serve", "agentrm serve")


def create_app(model_path: str | None = None, *, model: Any = None, tokenizer: Any = None,
               model_name: str | None = None, device: str | None = None) -> Any:
    """The FastAPI app serving ``model_path`` (or an already loaded ``model`` + ``tokenizer``)."""
    _require_serve()
    from fastapi import FastAPI, HTTPException

    from agentrm_gym.agents.hf import HFGenerator, load_model
    from agentrm_gym.agents.prompts import render

    if model is None:
        if model_path is None:
            raise ValueError("pass model_path or model and tokenizer")
        model, tokenizer = load_model(model_path, device)
    engine = HFGenerator(model, tokenizer)
    name = model_name or model_path or getattr(model.config, "name_or_path", "") or "model"
    lock = threading.Lock()
    import torch

    def check_model(requested: str | None) -> None:
        if requested and requested != name:
            raise HTTPException(404, detail=f"model {requested!r} is not served here; GET /v1/models lists {name!r}")

    def run(prompts: list[str], n: int, temperature: float, top_p: float, max_tokens: int,
            stop: str | list[str] | None, seed: int | None) -> list[list[Any]]:
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        with lock:
            if seed is not None:
                torch.manual_seed(seed)
            return engine.generate(prompts, n, temperature, max_tokens, stop=stops, top_p=top_p)

    def usage(prompts: list[str], rows: list[list[Any]]) -> dict[str, int]:
        p = sum(engine.count_tokens(x) for x in prompts)
        c = sum(len(s.token_ids) for row in rows for s in row)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    app = FastAPI(title="agentrm-gym policy server")

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "agentrm-gym"}]}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/completions")
    def completions(req: CompletionRequest) -> dict[str, Any]:
        check_model(req.model)
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        if not prompts:
            raise HTTPException(400, detail="prompt is empty")
        rows = run(prompts, req.n, req.temperature, req.top_p, req.max_tokens, req.stop, req.seed)
        choices = []
        for row in rows:
            for s in row:
                lp = None
                if req.logprobs is not None:
                    toks = [tokenizer.decode([t]) for t in s.token_ids]
                    offsets, pos = [], 0
                    for t in toks:
                        offsets.append(pos)
                        pos += len(t)
                    lp = {"tokens": toks, "token_logprobs": s.token_logprobs, "top_logprobs": None,
                          "text_offset": offsets}
                choices.append({"index": len(choices), "text": s.text, "logprobs": lp, "finish_reason": s.finish_reason})
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": name, "choices": choices, "usage": usage(prompts, rows)}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> dict[str, Any]:
        check_model(req.model)
        if not req.messages:
            raise HTTPException(400, detail="messages is empty")
        prompt = render([m.model_dump() for m in req.messages], tokenizer, add_generation_prompt=True)
        max_tokens = req.max_completion_tokens or req.max_tokens or 256
        rows = run([prompt], req.n, req.temperature, req.top_p, max_tokens, req.stop, req.seed)
        choices = []
        for s in rows[0]:
            lp = None
            if req.logprobs:
                lp = {"content": [{"token": tokenizer.decode([t]), "logprob": v, "bytes": None, "top_logprobs": []}
                                  for t, v in zip(s.token_ids, s.token_logprobs, strict=True)]}
            choices.append({"index": len(choices), "message": {"role": "assistant", "content": s.text},
                            "logprobs": lp, "finish_reason": s.finish_reason})
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": name, "choices": choices, "usage": usage([prompt], rows)}

    return app


class BackgroundServer:
    """Run an app with uvicorn in a daemon thread (tests, notebooks); a context manager that stops it.

    Args:
        app: the ASGI app.
        host: bind address (loopback by default).
        port: the port; 0 picks a free one (read :attr:`port` after start).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0):
        import socket

        import uvicorn

        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.host, self.port = host, port
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the server did not start on {self.host}:{self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(model_path: str, host: str = "127.0.0.1", port: int = 8000, device: str | None = None,
          model_name: str | None = None) -> None:
    """Serve ``model_path`` until interrupted."""
    import uvicorn

    uvicorn.run(create_app(model_path, device=device, model_name=model_name), host=host, port=port,
                log_level="info")
