"""ASGI middleware (pure ASGI: no body buffering): the body-size limit, HEAD answered as
GET, and the request context (request id, one access-log line and the request metrics)."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import BodyTimeout, PayloadTooLarge
from service.http.error_handlers import error_response, service_error_response
from service.metrics import Metrics

log = logging.getLogger("service.access")
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


# Lingering close, as nginx does it: a client that sends its whole body before reading the
# answer (Python's urllib and http.client do) gets a connection reset instead of the 413 if
# the server closes with the body unread. So after a 413 the rest of the body is read and
# thrown away, within these bounds, before the connection closes.
LINGER_MAX_BYTES = 64 * 1024 * 1024
LINGER_MAX_S = 10.0
LINGER_IDLE_S = 2.0  # a client that stops sending is not waited for longer than this


class BodyLimitMiddleware:
    """413 before reading a body whose Content-Length is too big; also caps chunked bodies.
    408 when a body stops arriving for ``timeout_s`` before its end (uvicorn would wait
    for it as long as the client keeps the connection open).

    The 413 goes out at once; the connection closes after the rest of the body has been
    discarded (``discard_body``), never buffered.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        timeout_s: float = 15.0,
        linger_bytes: int = LINGER_MAX_BYTES,
        linger_s: float = LINGER_MAX_S,
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.linger_bytes = linger_bytes
        self.linger_s = linger_s

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
        if size == 0 or (size is None and b"transfer-encoding" not in headers):
            return await self.app(scope, receive, send)  # no body to wait for
        # Chunked bodies (and, framed as chunked by h11, those with both headers) are counted.
        counted = size is None or b"transfer-encoding" in headers
        await self._with_body(scope, self._timed(receive), send, counted)

    async def _with_body(self, scope: Scope, receive: Receive, send: Send, counted: bool) -> None:
        started = False

        async def noting_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            if counted:
                await self._counted(scope, receive, noting_send)
            else:  # framed by Content-Length: it cannot exceed the size checked
                await self.app(scope, receive, noting_send)
        except BodyTimeout as exc:  # raised where no route's error handler was around it
            if started:
                raise
            await service_error_response(Request(scope), exc)(scope, receive, send)

    def _timed(self, receive: Receive) -> Receive:
        """``receive`` with a deadline on each part of the body, none once it has ended
        (an app may then wait for the client to disconnect as long as it likes)."""
        ended = False
        received = 0

        async def timed_receive() -> Message:
            nonlocal ended, received
            if ended:
                return await receive()
            try:
                async with asyncio.timeout(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(
                    f"the request body stopped arriving: {received} bytes received, then "
                    f"nothing for {self.timeout_s:g} s (SENTIMENT_BODY_TIMEOUT_S)"
                ) from None
            received += len(message.get("body", b""))
            ended = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        return timed_receive

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        over = False

        async def limited_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    raise StarletteHTTPException(413, self._message())
            return message

        lingering = self._lingering(scope, receive, send)

        async def send_413_lingering(message: Message) -> None:
            await (lingering if over else send)(message)

        await self.app(scope, limited_receive, send_413_lingering)

    def _message(self) -> str:
        return f"request body exceeds {self.max_bytes} bytes (SENTIMENT_MAX_BODY_BYTES)"

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = PayloadTooLarge(self._message())
        request = Request(scope, receive)
        response = error_response(request, exc.status_code, exc.code, exc.message)
        response.headers["Connection"] = "close"  # the body is discarded, not read
        await response(scope, receive, self._lingering(scope, receive, send))

    def _lingering(self, scope: Scope, receive: Receive, send: Send) -> Send:
        return lingering_send(scope, receive, send, self.linger_bytes, self.linger_s)


def lingering_send(
    scope: Scope,
    receive: Receive,
    send: Send,
    max_bytes: int = LINGER_MAX_BYTES,
    max_s: float = LINGER_MAX_S,
) -> Send:
    """``send`` that holds the end of a response until the request body is discarded.

    For answers that close the connection with the body unread (413, and 503 while the
    server stops accepting). The whole answer is on the wire first (its Content-Length
    tells the client where it ends); only the server's "response complete", after which
    it closes, waits.
    """
    # A client waiting for "100 Continue" has sent no body: reading would invite it.
    if (b"expect", b"100-continue") in scope["headers"]:
        return send

    async def send_then_discard(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            await send({**message, "more_body": True})
            await discard_body(receive, max_bytes, max_s)
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)

    return send_then_discard


async def discard_body(
    receive: Receive, max_bytes: int, max_s: float, idle_s: float = LINGER_IDLE_S
) -> int:
    """Read and drop the request body until it ends, or ``max_bytes`` / ``max_s`` pass, or
    nothing arrives for ``idle_s``; the bytes dropped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_s
    dropped = 0
    while dropped <= max_bytes and (left := deadline - loop.time()) > 0:
        try:
            message = await asyncio.wait_for(receive(), min(idle_s, left))
        except TimeoutError:
            break
        if message["type"] != "http.request":  # the client left
            break
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return dropped


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
