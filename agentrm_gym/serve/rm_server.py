"""Serve a reward model over HTTP.

Endpoints of :func:`create_app`:

* ``POST /score`` - ``{"states": [AgentState as JSON, ...]}`` -> ``{"scores": [...]}``;
* ``POST /get_reward`` - OpenRLHF's remote-RM protocol: ``{"query": [formatted RM texts], ...}`` ->
  ``{"rewards": [...]}`` (also under ``"scores"``); texts in the RM format (header, ``History:``, turns)
  keep their header on truncation, other texts are treated as history;
* ``GET /health`` - ``{"status": "ok", "kind": ..., "header_version": ...}``.

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
from agentrm_gym.trajectory import state_from_dict, state_to_dict

__all__ = ["RMServer", "RemoteRewardModel", "create_app", "state_from_dict", "state_to_dict"]


def _require_serve() -> None:
    require_extra(("fastapi", "uvicorn"), "serve", "serving")


def create_app(rm: RewardModel) -> Any:
    """The FastAPI app serving ``rm`` (one request scores at a time; the RM's cache is shared)."""
    _require_serve()
    from fastapi import Body, FastAPI, HTTPException

    app = FastAPI(title="agentrm reward model", version="1")
    lock = threading.Lock()

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "kind": rm.kind, "header_version": rm.fmt.header_version}

    @app.post("/score")
    def score(payload: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        raw = payload.get("states")
        if not isinstance(raw, list):
            raise HTTPException(status_code=422, detail="expected {'states': [AgentState objects]}")
        try:
            states = [state_from_dict(s) for s in raw]
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        with lock:
            values = rm.score(states) if states else np.zeros(0)
        return {"scores": [float(v) for v in values]}

    @app.post("/get_reward")
    def get_reward(payload: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        query = payload.get("query")
        if not isinstance(query, list) or not all(isinstance(q, str) for q in query):
            raise HTTPException(status_code=422, detail="expected {'query': [strings]}")
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
    """

    def __init__(self, rm: RewardModel, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 30.0):
        _require_serve()
        import uvicorn

        if port == 0:
            import socket

            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.host, self.port = host, port
        self.startup_timeout = startup_timeout
        config = uvicorn.Config(create_app(rm), host=host, port=port, log_level="warning", lifespan="off")
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
