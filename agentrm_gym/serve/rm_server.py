"""Serve a reward model over HTTP.

Endpoints of :func:`create_app`:

* ``POST /score`` - ``{"states": [AgentState as JSON, ...]}`` -> ``{"scores": [...]}``;
* ``POST /get_reward`` - OpenRLHF's remote-RM protocol: ``{"query": [formatted RM texts], ...}`` ->
  ``{"rewards": [...]}`` (also under ``"scores"``); texts in the RM format (header, ``History:``, turns)
  keep their header on truncation, other texts are treated as history;
* ``GET /health`` - ``{"status": "ok", "kind": ..., "header_version": ...}``.

Invalid requests are answered ``422`` with ``{"detail": message}`` (a state that is not an AgentState,
a step whose ``action`` is not a string, text with a lone surrogate), never 500; a body over
``max_request_bytes`` (1 MB by default) ``413``; with ``api_key`` every request but ``GET /health`` needs
``Authorization: Bearer <api_key>`` (``401``) - :mod:`agentrm_gym.serve.guard`. Scores are cached by the
RM itself (:class:`~agentrm_gym.rm.base.RewardModel`: keyed by a digest of the text, bounded in entries).

:class:`RMServer` runs uvicorn in a background thread (tests, notebooks); ``agentrm serve rm --rm PATH``
runs it in the foreground. The client, :class:`~agentrm_gym.rm.remote.RemoteRewardModel`, lives with the
reward models (re-exported here).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from agentrm_gym.extras import require_extra
from agentrm_gym.rm.base import RewardModel
from agentrm_gym.rm.remote import RemoteRewardModel
from agentrm_gym.serve.guard import DEFAULT_MAX_REQUEST_BYTES, RequestGuard, text_problem, warn_if_exposed
from agentrm_gym.trajectory import state_from_dict, state_to_dict

__all__ = ["RMServer", "RemoteRewardModel", "create_app", "serve", "state_from_dict", "state_to_dict"]


def _require_serve() -> None:
    require_extra(("fastapi", "uvicorn"), "serve", "serving")


def _check_texts(values: Any, where: str) -> None:
    """422 for a string (anywhere inside ``values``) that is not valid Unicode (a lone surrogate)."""
    from fastapi import HTTPException

    stack = [(where, values)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, str):
            problem = text_problem(v)
            if problem is not None:
                raise HTTPException(status_code=422, detail=f"{path}: {problem}")
        elif isinstance(v, dict):
            stack.extend((f"{path}.{k}", x) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((f"{path}[{i}]", x) for i, x in enumerate(v))


def create_app(rm: RewardModel, max_request_bytes: int | None = DEFAULT_MAX_REQUEST_BYTES,
               api_key: str | None = None) -> Any:
    """The FastAPI app serving ``rm`` (one request scores at a time; the RM's cache is shared).

    ``max_request_bytes`` bounds a request body (413 above it; ``0``: no limit); with ``api_key`` every
    request but ``GET /health`` needs ``Authorization: Bearer <api_key>`` (401 without it)."""
    _require_serve()
    from fastapi import Body, FastAPI, HTTPException
    from fastapi.responses import JSONResponse

    app = FastAPI(title="agentrm reward model", version="1")
    app.add_middleware(RequestGuard, max_request_bytes=max_request_bytes, api_key=api_key)
    lock = threading.Lock()

    @app.exception_handler(NotImplementedError)
    async def _unsupported(request: Any, exc: NotImplementedError) -> Any:  # e.g. texts to a states-only RM
        return JSONResponse(status_code=501, content={"detail": f"this reward model cannot do that: {exc}"})

    @app.exception_handler(Exception)
    async def _internal(request: Any, exc: Exception) -> Any:  # a bug, still answered as JSON
        return JSONResponse(status_code=500, content={"detail": f"internal server error ({type(exc).__name__})"})

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "kind": rm.kind, "header_version": rm.fmt.header_version}

    @app.post("/score")
    def score(payload: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        raw = payload.get("states") if isinstance(payload, dict) else None
        if not isinstance(raw, list):
            raise HTTPException(status_code=422, detail="expected {'states': [AgentState objects]}")
        _check_texts(raw, "states")
        states = []
        for i, s in enumerate(raw):
            try:
                states.append(state_from_dict(s))
            except ValueError as exc:
                raise HTTPException(status_code=422, detail=f"states[{i}]: {exc}") from exc
        with lock:
            values = rm.score(states) if states else np.zeros(0)
        return {"scores": [float(v) for v in values]}

    @app.post("/get_reward")
    def get_reward(payload: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        query = payload.get("query") if isinstance(payload, dict) else None
        if not isinstance(query, list) or not all(isinstance(q, str) for q in query):
            raise HTTPException(status_code=422, detail="expected {'query': [strings]}")
        _check_texts(query, "query")
        with lock:
            values = rm.score_texts(query) if query else np.zeros(0)
        rewards = [float(v) for v in values]
        return {"rewards": rewards, "scores": rewards}

    return app


class RMServer:
    """Run :func:`create_app` under uvicorn in a daemon thread; a context manager that stops it on exit.

    Args:
        rm: the reward model.
        host: bind address (``127.0.0.1`` by default: loopback only).
        port: TCP port (0 picks a free one; read :attr:`port` after ``start``).
        startup_timeout: seconds to wait for the server to listen.
        max_request_bytes: the largest request body (413 above it).
        api_key: when set, clients must send ``Authorization: Bearer <api_key>``
            (``RemoteRewardModel(url, api_key=...)``).
    """

    def __init__(self, rm: RewardModel, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 30.0,
                 max_request_bytes: int | None = DEFAULT_MAX_REQUEST_BYTES, api_key: str | None = None):
        _require_serve()
        import uvicorn

        if port == 0:
            import socket

            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.host, self.port = host, port
        self.startup_timeout = startup_timeout
        warn_if_exposed(host, api_key, "RM server")
        app = create_app(rm, max_request_bytes=max_request_bytes, api_key=api_key)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> RMServer:
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the RM server did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def __enter__(self) -> RMServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(rm: RewardModel, host: str = "127.0.0.1", port: int = 8001,
          max_request_bytes: int | None = DEFAULT_MAX_REQUEST_BYTES, api_key: str | None = None) -> None:
    """Serve ``rm`` in the foreground until interrupted (a warning when ``host`` is beyond loopback without
    ``api_key``)."""
    import uvicorn

    warn_if_exposed(host, api_key, "RM server")
    uvicorn.run(create_app(rm, max_request_bytes=max_request_bytes, api_key=api_key), host=host, port=port,
                log_level="info")
