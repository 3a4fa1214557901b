"""ASGI middleware (pure ASGI: no body buffering): the body-size limit, and the request
context (request id, one access-log line and the request metrics)."""

from __future__ import annotations

import logging
import random
import re
import time

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge
from service.http.error_handlers import error_response
from service.metrics import Metrics

log = logging.getLogger("service.access")
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class BodyLimitMiddleware:
    """413 before reading a body whose Content-Length is too big; also caps chunked bodies."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        try:
            size = int(declared) if declared is not None else None
        except ValueError:
            size = None
        if size is not None and size > self.max_bytes:
            return await self._reject(scope, receive, send)
        if size is not None and b"transfer-encoding" not in headers:
            # The server frames this body by Content-Length, so it cannot exceed the size
            # just checked: no need to count it. (With Transfer-Encoding too, h11 frames
            # it as chunked: such bodies are counted.)
            return await self.app(scope, receive, send)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise StarletteHTTPException(413, self._message())
            return message

        await self.app(scope, limited_receive, send)

    def _message(self) -> str:
        return f"request body exceeds {self.max_bytes} bytes (SENTIMENT_MAX_BODY_BYTES)"

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = PayloadTooLarge(self._message())
        request = Request(scope, receive)
        response = error_response(request, exc.status_code, exc.code, exc.message)
        response.headers["Connection"] = "close"  # we did not read the body
        await response(scope, receive, send)


class RequestContextMiddleware:
    """Request id (accepted or generated, echoed), one access-log line, request metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: set[str]):
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        incoming = incoming.decode("latin-1")
        # A random 128-bit id, in uuid4().hex's format, without a system call per request
        # (an id to correlate logs, not a secret).
        request_id = (
            incoming if _REQUEST_ID_OK.match(incoming) else f"{random.getrandbits(128):032x}"
        )
        scope.setdefault("state", {})["request_id"] = request_id
        id_bytes = request_id.encode()
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", id_bytes)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = self._route_label(scope)
            self.metrics.request_done(route, status, seconds)
            if log.isEnabledFor(logging.INFO):
                _access_line(scope, route, status, seconds, request_id)

    def _route_label(self, scope: Scope) -> str:
        # The router records the matched route in the scope; with FastAPI >= 0.16x an
        # included APIRouter's routes no longer appear in ``app.routes`` (they sit behind
        # one lazy entry), so a path set built at startup alone would label them "other".
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str) and path:
            return path
        return scope["path"] if scope["path"] in self.routes else "other"


_IN_MESSAGE = ("method", "path", "status", "ms")


def _access_line(scope: Scope, route: str, status: int, seconds: float, request_id: str) -> None:
    """One line per request: what was asked, the answer, and who and what served it."""
    state = scope["state"]
    ms = round(seconds * 1000, 2)
    log.info(
        "%s %s %d %.1f ms",
        scope["method"],
        route,
        status,
        ms,
        extra={
            "method": scope["method"],
            "path": route,
            "status": status,
            "ms": ms,
            "error": state.get("error"),
            "model": state.get("model"),
            "version": state.get("version"),
            "texts": state.get("texts"),
            "key": state.get("key_id"),
            "request_id": request_id,
            "shown_in_message": _IN_MESSAGE,
        },
    )
