"""What both servers put in front of their endpoints: a request-size limit, an optional API key, text checks.

* :class:`RequestGuard` - an ASGI middleware: a body larger than ``max_request_bytes`` (by its
  ``Content-Length`` or as it streams in) is answered ``413``, and with an ``api_key`` every request but
  ``GET /health`` must carry ``Authorization: Bearer <key>`` (else ``401``); the error body is the server's
  own JSON shape (``error_body``);
* :func:`warn_if_exposed` - a warning when a server binds beyond loopback without an API key;
* :func:`text_problem` - why a string cannot be tokenized (a lone UTF-16 surrogate, which JSON's
  ``"\\ud800"`` escapes can carry but UTF-8 cannot encode), or ``None``.

Nothing here imports FastAPI: the middleware speaks plain ASGI.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import warnings
from collections.abc import Callable
from typing import Any

#: The default request-body limit of both servers (1 MB): far above any prompt a 512-token model reads.
DEFAULT_MAX_REQUEST_BYTES = 1_000_000
#: Paths any client may read without the API key (liveness probes).
OPEN_PATHS = frozenset({"/health"})
#: A body this much larger than the limit is not read to the end before the 413 (the connection closes).
_DRAIN_LIMIT = 16 * 1024 * 1024


class ExposedServerWarning(UserWarning):
    """A server listens beyond loopback without an API key: anyone who can reach the port can use it."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host.strip().lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def warn_if_exposed(host: str, api_key: str | None, what: str = "server") -> bool:
    """Warn (:class:`ExposedServerWarning`) when ``host`` is not loopback and there is no ``api_key``; returns
    whether it warned."""
    if api_key or is_loopback(host):
        return False
    warnings.warn(f"the {what} listens on {host}, beyond loopback, without an API key: anyone who can reach "
                  "the port can use it. Pass --api-key (clients send 'Authorization: Bearer <key>') or bind "
                  "127.0.0.1", ExposedServerWarning, stacklevel=2)
    return True


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be encoded as UTF-8 (a lone surrogate code point), or ``None``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"invalid Unicode: a lone surrogate {text[exc.start]!r} at character {exc.start} "
                "(send valid UTF-8 text; a surrogate pair must be complete)")
    return None


def default_error_body(status: int, message: str) -> dict[str, Any]:
    return {"detail": message}


class RequestGuard:
    """ASGI middleware: ``413`` for a body over ``max_request_bytes``, ``401`` without the ``api_key``.

    Args:
        app: the ASGI app behind it.
        max_request_bytes: the largest request body accepted (``0`` or ``None``: no limit).
        api_key: when set, requests (but ``GET`` of :data:`OPEN_PATHS`) need ``Authorization: Bearer <key>``.
        error_body: ``(status, message) -> JSON object`` in the server's error shape.
    """

    def __init__(self, app: Any, max_request_bytes: int | None = DEFAULT_MAX_REQUEST_BYTES,
                 api_key: str | None = None,
                 error_body: Callable[[int, str], dict[str, Any]] = default_error_body):
        self.app = app
        self.max_request_bytes = max_request_bytes or 0
        self.api_key = api_key or None
        self.error_body = error_body

    async def _reply(self, send: Any, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
        body = json.dumps(self.error_body(status, message)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *headers]})
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, scope: dict[str, Any]) -> bool:
        if self.api_key is None or (scope.get("path") in OPEN_PATHS and scope.get("method") == "GET"):
            return True
        given = b""
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                given = value
        expected = f"Bearer {self.api_key}".encode()
        return hmac.compare_digest(given.strip(), expected)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_request_bytes
        too_big = f"request body larger than {limit} bytes (the server's --max-request-bytes)"
        declared = None
        for name, value in scope.get("headers", ()):
            if name.lower() == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._reply(send, 400, "invalid Content-Length header")
                    return
        if not self._authorized(scope):
            await self._drain(receive, _DRAIN_LIMIT)
            await self._reply(send, 401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                              [(b"www-authenticate", b"Bearer")])
            return
        if limit and declared is not None and declared > limit:
            await self._drain(receive, _DRAIN_LIMIT)
            await self._reply(send, 413, too_big)
            return
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            more = message.get("more_body", False)
            if limit and total > limit:
                if more:
                    await self._drain(receive, _DRAIN_LIMIT)
                await self._reply(send, 413, too_big)
                return
            chunks.append(chunk)
        body, replayed = b"".join(chunks), False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect a streaming response listens for

        await self.app(scope, replay, send)

    @staticmethod
    async def _drain(receive: Any, cap: int) -> None:
        """Read (and drop) the rest of the body, up to ``cap`` bytes, so the client sees the reply rather
        than a connection reset while it is still sending."""
        seen = 0
        while seen <= cap:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return
