"""Serve the agentrm-gym tasks as an OpenEnv environment whose sessions can be snapshotted and forked.

The app is ``openenv-core``'s: :class:`SnapshotEnvServer` is its ``HTTPEnvServer`` (session table, per-session
executor, capacity bound, idle reaper, the ``/ws`` WebSocket transport, ``/reset`` ``/step`` ``/state``
``/health`` ``/metadata`` ``/schema`` ``/mcp``) over :class:`~agentrm_gym.serve.env_session.TaskEnvironment`,
with the routes OpenEnv lacks added to the same app:

=====================================  ===============================================================
``POST /sessions``                     open an HTTP session -> ``{"session_id"}``
``POST /sessions/{id}/reset``          OpenEnv's reset body (``seed``, ``task``, ``task_id``, ``split``,
                                       ``snapshot_id``) -> ``{"observation", "reward", "done"}``
``POST /sessions/{id}/step``           ``{"action": {"command": text}}`` -> the same shape
``GET  /sessions/{id}/state``          the episode (:class:`TextState`)
``POST /sessions/{id}/snapshot``       -> ``{"snapshot_id", "steps"}`` (an opaque token; the body may carry
                                       ``{"release": [tokens]}`` to free earlier ones)
``POST /sessions/{id}/restore``        ``{"snapshot_id"}`` -> the restored observation
``POST /sessions/{id}/fork``           ``{"snapshot_id"?}`` -> a new session at this one's state (or at
                                       the token's) -> ``{"session_id", "observation", ...}``
``GET  /sessions/{id}/expert``         -> ``{"action"}``: the task oracle's next command
``DELETE /sessions/{id}``              close the session (its env and simulator, its snapshots)
``DELETE /snapshots/{token}``          free one snapshot
``GET  /capacity``                     live and maximal sessions and snapshots
=====================================  ===============================================================

A WebSocket session (OpenEnv's client) is a session too: its observations carry ``session_id``, so the
snapshot routes work on it; it restores or forks with ``reset(snapshot_id=...)``.

Hygiene: sessions are bounded (``429`` beyond ``max_sessions``), as are snapshots (LRU per session and in
all; an evicted token is ``410``); a session idle for ``idle_timeout`` seconds is closed (OpenEnv's reaper:
``env.close()`` stops its simulator), as is every session when the server shuts down. Request bodies over
``max_request_bytes`` get ``413`` (WebSocket messages over it close the connection), requests without the
``api_key`` ``401`` (WebSockets: closed before accept) - :mod:`agentrm_gym.serve.guard`. A malformed
request gets a 4xx ``{"detail": ...}``, never a 500.

:class:`EnvServer` runs the app under uvicorn in a background thread (tests, notebooks); ``agentrm serve
env`` runs :func:`serve` in the foreground. The client env is :class:`agentrm_gym.envs.remote.RemoteEnv`
(``gym.make("agentrm/Remote-v0", url=..., task=...)``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from agentrm_gym.core import MissingExtra
from agentrm_gym.extras import require_extra
from agentrm_gym.registry import available_specs, get_spec, missing_requirements
from agentrm_gym.serve.guard import DEFAULT_MAX_REQUEST_BYTES, RequestGuard, warn_if_exposed

__all__ = ["EnvServer", "create_app", "resolve_tasks", "serve"]


def _require_openenv() -> None:
    require_extra(("openenv", "fastapi", "uvicorn"), "serve", "the env server")


def resolve_tasks(tasks: Sequence[str] | None = None) -> tuple[str, ...]:
    """Canonical task names to serve: ``tasks`` (names or ids) or every task whose backend is installed.

    Raises :class:`~agentrm_gym.core.UnknownTask` for an unknown name and
    :class:`~agentrm_gym.core.MissingExtra` for a named task whose extra is missing."""
    if not tasks:
        names = [s.name for s in available_specs() if not missing_requirements(s)]
    else:
        names = []
        for t in tasks:
            spec = get_spec(t)
            missing = missing_requirements(spec)
            if missing:
                raise MissingExtra(f"{spec.name} needs {', '.join(missing)}: pip install 'agentrm-gym[{spec.extra}]'")
            if spec.name not in names:
                names.append(spec.name)
    if not names:
        raise MissingExtra("no task can be served in this install")
    return tuple(names)


class _EnvRequestGuard(RequestGuard):
    """:class:`RequestGuard`, and the API key on WebSocket connections too (refused before accept)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and not self._authorized(scope):
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": 1008, "reason": "missing or wrong API key"})
            return
        await super().__call__(scope, receive, send)


def create_app(tasks: Sequence[str] | None = None, *, max_sessions: int = 64, max_snapshots: int = 16384,
               max_snapshots_per_session: int = 2048, idle_timeout: float | None = 600.0,
               max_request_bytes: int | None = DEFAULT_MAX_REQUEST_BYTES, api_key: str | None = None,
               env_kwargs: dict[str, dict[str, Any]] | None = None) -> Any:
    """The FastAPI app: OpenEnv's routes and the session/snapshot routes over ``tasks``.

    Args:
        tasks: task names or ids to serve (default: every task installed here); the first is the default.
        max_sessions: live sessions (WebSocket and HTTP together); ``429`` beyond.
        max_snapshots: live snapshot tokens in all (least recently used evicted beyond).
        max_snapshots_per_session: live snapshot tokens per session (the same).
        idle_timeout: seconds without a request after which a session is closed (``None``: never).
        max_request_bytes: the largest request body or WebSocket message (``413`` above; ``0``: no limit).
        api_key: when set, every request but ``GET /health`` needs ``Authorization: Bearer <api_key>``.
        env_kwargs: constructor kwargs per task name.
    """
    _require_openenv()
    from fastapi import FastAPI

    from agentrm_gym.serve.env_routes import SnapshotEnvServer, add_error_handlers
    from agentrm_gym.serve.env_session import EnvServerLimits

    limits = EnvServerLimits(resolve_tasks(tasks), dict(env_kwargs or {}), max_sessions, max_snapshots,
                             max_snapshots_per_session, idle_timeout)
    app = FastAPI(title="agentrm-gym env server (OpenEnv)", version="1.0.0",
                  description="agentrm-gym text environments over OpenEnv, with snapshot/restore/fork sessions.")
    app.add_middleware(_EnvRequestGuard, max_request_bytes=max_request_bytes, api_key=api_key)
    server = SnapshotEnvServer(limits)
    server.register_routes(app)
    add_error_handlers(app)
    app.state.env_server = server
    return app


class EnvServer:
    """Run :func:`create_app` under uvicorn in a daemon thread; a context manager that stops it on exit.

    Args:
        tasks: task names or ids (default: all installed).
        host: bind address (``127.0.0.1``: loopback only).
        port: TCP port (0 picks a free one; read :attr:`port`).
        startup_timeout: seconds to wait for the server to listen.
        **app_kwargs: the limits and ``api_key`` of :func:`create_app`.
    """

    def __init__(self, tasks: Sequence[str] | None = None, host: str = "127.0.0.1", port: int = 0,
                 startup_timeout: float = 30.0, **app_kwargs: Any):
        _require_openenv()
        import uvicorn

        if port == 0:
            import socket

            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.host, self.port, self.startup_timeout = host, port, startup_timeout
        warn_if_exposed(host, app_kwargs.get("api_key"), "env server")
        self.app = create_app(tasks, **app_kwargs)
        limit = app_kwargs.get("max_request_bytes", DEFAULT_MAX_REQUEST_BYTES)
        config = uvicorn.Config(self.app, host=host, port=port, log_level="warning", lifespan="on",
                                ws_max_size=limit or 16 * 1024 * 1024)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def env_server(self) -> Any:
        """The :class:`SnapshotEnvServer` (its session table and snapshot store)."""
        return self.app.state.env_server

    def start(self) -> EnvServer:
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the env server did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def __enter__(self) -> EnvServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(tasks: Sequence[str] | None = None, host: str = "127.0.0.1", port: int = 8002, **app_kwargs: Any) -> None:
    """Serve ``tasks`` in the foreground until interrupted (a warning when ``host`` is beyond loopback without
    ``api_key``); every session is closed on shutdown."""
    _require_openenv()
    import uvicorn

    warn_if_exposed(host, app_kwargs.get("api_key"), "env server")
    limit = app_kwargs.get("max_request_bytes", DEFAULT_MAX_REQUEST_BYTES)
    uvicorn.run(create_app(tasks, **app_kwargs), host=host, port=port, log_level="info", lifespan="on",
                ws_max_size=limit or 16 * 1024 * 1024)

