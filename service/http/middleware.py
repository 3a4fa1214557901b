"""ASGI middleware (pure ASGI: no body buffering): HEAD answered as GET, and the request
context (request id, one access-log line and the request metrics). The body's limits:
``service.http.body``."""

from __future__ import annotations

import logging
import random
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import Metrics

log = logging.getLogger("service.access")
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class HeadAsGet:
    """HEAD wherever GET works: routed as GET (the server sends the headers only)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)
        # A copy: the server reads the original's HEAD and leaves the body out itself.
        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, send)
        finally:
            if "route" in as_get:  # for the access log and metrics (RequestContextMiddleware)
                scope["route"] = as_get["route"]


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
        if scope["path"].endswith("\n"):
            # Route patterns end in "$", which also matches before a final newline: POST
            # /predict%0A would be /predict. Written as sent, it matches no route (404).
            scope["path"] = scope["path"][:-1] + "%0A"
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
            self.metrics.request_done(route, status, seconds, scope["state"].get("model", ""))
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
