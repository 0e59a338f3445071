"""The routes OpenEnv lacks, on OpenEnv's own server class: HTTP sessions, snapshots, restore and fork.

:class:`SnapshotEnvServer` subclasses ``openenv.core.env_server.HTTPEnvServer`` over
:class:`~agentrm_gym.serve.env_session.TaskEnvironment`: OpenEnv keeps the session table, the per-session
executor (every call of a session runs on its own thread, in order), the capacity bound and the idle reaper;
this class names each env's session, forgets a session's snapshots with it, closes every session on shutdown
and adds the ``/sessions`` and ``/snapshots`` routes listed in :mod:`agentrm_gym.serve.env_server`.
Imported by :func:`agentrm_gym.serve.env_server.create_app` only (it needs openenv-core).
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse
from openenv.core.env_server import HTTPEnvServer
from openenv.core.env_server.exceptions import SessionCapacityError
from openenv.core.env_server.serialization import deserialize_action, serialize_observation
from openenv.core.env_server.types import ConcurrencyConfig, ResetRequest, StepRequest
from pydantic import ValidationError

from agentrm_gym.core import ResetNeeded, unwrap_text_env
from agentrm_gym.registry import get_spec
from agentrm_gym.serve.env_session import (
    EnvServerLimits,
    RequestError,
    SnapshotStore,
    TaskEnvironment,
    TextAction,
    TextObservation,
)

__all__ = ["SnapshotEnvServer", "add_error_handlers"]


class SnapshotEnvServer(HTTPEnvServer):
    """OpenEnv's ``HTTPEnvServer`` over :class:`TaskEnvironment`, plus HTTP sessions and snapshots."""

    def __init__(self, limits: EnvServerLimits):
        self.limits = limits
        self.store = SnapshotStore(limits.max_snapshots, limits.max_snapshots_per_session)
        self._task_ids: dict[tuple[str, str], list[str]] = {}
        super().__init__(
            functools.partial(TaskEnvironment, limits, self.store), TextAction, TextObservation,
            concurrency_config=ConcurrencyConfig(max_concurrent_envs=limits.max_sessions,
                                                 session_timeout=limits.idle_timeout),
        )

    # -------------------------------------------------------------- OpenEnv's session hooks
    async def _create_session(self) -> tuple[str, Any]:
        session_id, env = await super()._create_session()
        env.session_id = session_id
        return session_id, env

    async def _destroy_session(self, session_id: str) -> None:
        await super()._destroy_session(session_id)
        self.store.drop_owner(session_id)

    async def task_ids(self, task: str, split: str) -> list[str]:
        """The fixed task ids of a split (computed once per task and split, on a temporary env)."""
        key = (task, split)
        if key not in self._task_ids:
            env = TaskEnvironment(self.limits, self.store)

            def ids() -> list[str]:
                try:
                    return list(unwrap_text_env(env._ensure(task, split)).task_ids(split))
                finally:
                    env.close()

            self._task_ids[key] = await self._run_sync_in_thread_pool(ids)
        return self._task_ids[key]

    async def close_all(self) -> None:
        """Close every session (server shutdown): no simulator outlives the server."""
        for sid in list(self._sessions):
            await self._destroy_session(sid)

    # -------------------------------------------------------------- helpers of the routes
    def _env_of(self, session_id: str) -> Any:
        env = self._sessions.get(session_id)
        if env is None:
            raise RequestError(f"unknown session {session_id!r} (closed, reaped after "
                               f"{self.limits.idle_timeout}s idle, or never opened): POST /sessions", 404)
        self._update_session_activity(session_id)
        return env

    async def _run(self, session_id: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self._env_of(session_id)
        return await self._run_in_session_executor(session_id, fn, *args, **kwargs)

    async def _open(self) -> tuple[str, Any]:
        try:
            return await self._create_session()
        except SessionCapacityError as exc:
            raise RequestError(f"the server holds its maximum of {self.limits.max_sessions} sessions: close one "
                               "(DELETE /sessions/{id}) or retry later", 429) from exc

    # -------------------------------------------------------------- the extra routes
    def register_routes(self, app: FastAPI, mode: Any = "simulation") -> None:
        super().register_routes(app, mode)
        server = self

        async def _close_all() -> None:
            await server.close_all()

        app.router.on_shutdown.append(_close_all)

        @app.post("/sessions", status_code=201, tags=["Sessions"])
        async def open_session() -> dict[str, Any]:
            session_id, _ = await server._open()
            return {"session_id": session_id}

        @app.delete("/sessions/{session_id}", tags=["Sessions"])
        async def close_session(session_id: str) -> dict[str, Any]:
            server._env_of(session_id)
            await server._destroy_session(session_id)
            return {"session_id": session_id, "closed": True}

        @app.post("/sessions/{session_id}/reset", tags=["Sessions"])
        async def session_reset(session_id: str,
                                request: ResetRequest = Body(default_factory=ResetRequest)) -> dict[str, Any]:  # noqa: B008
            env = server._env_of(session_id)
            obs = await server._run(session_id, env.reset, **request.model_dump(exclude_unset=True))
            return serialize_observation(obs)

        @app.post("/sessions/{session_id}/step", tags=["Sessions"])
        async def session_step(session_id: str, request: StepRequest) -> dict[str, Any]:
            env = server._env_of(session_id)
            try:
                action = deserialize_action(request.action, TextAction)
            except ValidationError as exc:
                raise RequestError(f"action must be {{'command': text}}: {exc.errors(include_url=False)}") from exc
            obs = await server._run(session_id, env.step, action)
            server._update_session_activity(session_id, increment_step=True)
            return serialize_observation(obs)

        @app.get("/sessions/{session_id}/state", tags=["Sessions"])
        async def session_state(session_id: str) -> dict[str, Any]:
            env = server._env_of(session_id)
            state = await server._run(session_id, lambda: env.state)
            return state.model_dump()

        @app.post("/sessions/{session_id}/snapshot", tags=["Snapshots"])
        async def session_snapshot(session_id: str, body: dict[str, Any] | None = Body(default=None)) -> dict[str, Any]:  # noqa: B008
            env = server._env_of(session_id)
            release = (body or {}).get("release") or []
            if not isinstance(release, list) or not all(isinstance(t, str) for t in release):
                raise RequestError("release must be a list of snapshot tokens")
            for token in release:
                server.store.delete(token)
            item = await server._run(session_id, env.take_snapshot)
            return {"snapshot_id": server.store.put(session_id, item), "steps": item.state.steps}

        @app.post("/sessions/{session_id}/restore", tags=["Snapshots"])
        async def session_restore(session_id: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
            env = server._env_of(session_id)
            item = server.store.get(body.get("snapshot_id") if isinstance(body, dict) else None)
            obs = await server._run(session_id, env.restore_stored, item)
            return serialize_observation(obs)

        @app.post("/sessions/{session_id}/fork", status_code=201, tags=["Snapshots"])
        async def session_fork(session_id: str, body: dict[str, Any] | None = Body(default=None)) -> dict[str, Any]:  # noqa: B008
            env = server._env_of(session_id)
            token = (body or {}).get("snapshot_id") if isinstance(body, dict) else None
            if token is not None:
                item = server.store.get(token)
            else:
                item = await server._run(session_id, env.take_snapshot)
            new_id, new_env = await server._open()
            try:
                obs = await server._run(new_id, new_env.restore_stored, item)
            except BaseException:
                await server._destroy_session(new_id)
                raise
            return {"session_id": new_id, **serialize_observation(obs)}

        @app.get("/sessions/{session_id}/expert", tags=["Sessions"])
        async def session_expert(session_id: str) -> dict[str, Any]:
            env = server._env_of(session_id)
            return {"action": await server._run(session_id, env.expert_action)}

        @app.delete("/snapshots/{token}", tags=["Snapshots"])
        async def delete_snapshot(token: str) -> dict[str, Any]:
            return {"snapshot_id": token, "deleted": server.store.delete(token)}

        @app.get("/tasks", tags=["Environment Info"])
        async def tasks() -> dict[str, Any]:
            specs = [get_spec(name) for name in server.limits.tasks]
            return {"default": server.limits.tasks[0],
                    "tasks": {s.name: {"env_id": s.env_id, "max_episode_steps": s.max_steps,
                                       "test_size": s.test_size} for s in specs}}

        @app.get("/tasks/{task}/ids", tags=["Environment Info"])
        async def task_ids(task: str, split: str = "test") -> dict[str, Any]:
            return {"task": task, "split": split, "task_ids": await server.task_ids(task, split)}

        @app.get("/capacity", tags=["Sessions"])
        async def capacity() -> dict[str, Any]:
            return {"active_sessions": server.active_sessions, "max_sessions": server.max_concurrent_envs,
                    "snapshots": len(server.store), "max_snapshots": server.store.max_total,
                    "tasks": list(server.limits.tasks)}


def add_error_handlers(app: Any) -> None:
    """Answer the server's errors as ``{"detail": message}`` with a 4xx status (500 only for a bug)."""
    def reply(status: int, message: str) -> Any:
        return JSONResponse(status_code=status, content={"detail": message})

    @app.exception_handler(RequestError)
    async def _request_error(request: Any, exc: RequestError) -> Any:
        return reply(exc.status, str(exc))

    @app.exception_handler(ResetNeeded)
    async def _reset_needed(request: Any, exc: ResetNeeded) -> Any:
        return reply(409, str(exc))

    @app.exception_handler(SessionCapacityError)
    async def _capacity(request: Any, exc: SessionCapacityError) -> Any:
        return reply(429, str(exc))

    @app.exception_handler(Exception)
    async def _internal(request: Any, exc: Exception) -> Any:  # a bug, still answered as JSON
        return reply(500, f"internal server error ({type(exc).__name__}: {exc})")


