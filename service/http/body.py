"""The request body's limits (pure ASGI: no buffering): its size (413, checked before any
of it is read when Content-Length declares it), its pace (408 when it stops arriving), and
the lingering close that lets a client which sends its whole body before reading get the 413."""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import BodyTimeout, PayloadTooLarge
from service.http.error_handlers import error_response, service_error_response

# Lingering close, as nginx does it: a client that sends its whole body before reading the
# answer (Python's urllib and http.client do) gets a connection reset instead of the 413 if
# the server closes with the body unread. So after a 413 the rest of the body is read and
# thrown away, within these bounds, before the connection closes.
LINGER_MAX_BYTES = 64 * 1024 * 1024
LINGER_MAX_S = 10.0
LINGER_IDLE_S = 2.0  # a client that stops sending is not waited for longer than this
# A body must also arrive at this average pace once its first BODY_TIMEOUT_S have passed
# (Apache's mod_reqtimeout does the same): a byte every few seconds meets the deadline of
# each read, yet held a whole body's memory for as long as the client liked.
MIN_BODY_RATE = 64 * 1024  # bytes/s


class BodyLimitMiddleware:
    """413 before reading a body whose Content-Length is too big; also caps chunked bodies.
    408 when a body stops arriving for ``timeout_s`` before its end (uvicorn would wait
    for it as long as the client keeps the connection open; 0: no deadline).

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
        self.deadlines = BodyDeadlines(timeout_s) if timeout_s > 0 else None
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
        if self.deadlines is not None:
            receive = self.deadlines.timed(receive)
        try:
            # Chunked bodies (and, framed as chunked by h11, those with both headers) are
            # counted; one framed by Content-Length cannot exceed the size just checked.
            if size is None or b"transfer-encoding" in headers:
                await self._counted(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        except BodyTimeout as exc:
            # Raised where no route's error handler was around it (the fast path reads its
            # body first): no answer has started, as every reader reads before it answers.
            await service_error_response(Request(scope), exc)(scope, receive, send)

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


class BodyDeadlines:
    """Each waiting read of a request body gets a deadline; one timer sweeps them all.

    A timer per read (``asyncio.timeout``) cost about 4 µs of the event loop per request,
    a few percent of a short request's whole budget here (docs/performance.md); a deadline
    in a dict and one sweep every quarter of the timeout cost well under 1 µs. A stalled
    read is cancelled within 1.25 × the timeout and raises ``BodyTimeout``.
    """

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.waiting: dict[asyncio.Task, float] = {}
        self.expired: set[asyncio.Task] = set()
        self.sweep_loop: asyncio.AbstractEventLoop | None = None  # the loop a sweep is due in

    def timed(self, receive: Receive) -> Receive:
        """``receive`` with a deadline on each part of the body, none once it has ended
        (an app may then wait for the client to disconnect as long as it likes)."""
        ended = False
        received = 0
        started: float | None = None

        async def timed_receive() -> Message:
            nonlocal ended, received, started
            if ended:
                return await receive()
            task = asyncio.current_task()
            loop = task.get_loop()
            now = loop.time()
            started = now if started is None else started
            paced = started + self.timeout_s + received / MIN_BODY_RATE
            self.waiting[task] = min(now + self.timeout_s, paced)
            if self.sweep_loop is not loop:
                self.sweep_loop = loop
                loop.call_later(self.timeout_s / 4, self._sweep, loop)
            try:
                message = await receive()
            except asyncio.CancelledError:
                if task not in self.expired:
                    raise
                self.expired.discard(task)
                task.uncancel()  # this cancellation was ours, and it ends here
                raise self._timed_out(received, now - started, loop.time() - now) from None
            finally:
                del self.waiting[task]
            received += len(message.get("body", b""))
            ended = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        return timed_receive

    def _timed_out(self, received: int, before_s: float, waited_s: float) -> BodyTimeout:
        if waited_s >= 0.99 * self.timeout_s:  # this read's own deadline (give or take µs)
            return BodyTimeout(
                f"the request body stopped arriving: {received} bytes received, then "
                f"nothing for {self.timeout_s:g} s (SENTIMENT_BODY_TIMEOUT_S)"
            )
        return BodyTimeout(
            f"the request body arrives too slowly: {received} bytes in {before_s + waited_s:.0f} s; after "
            f"the first {self.timeout_s:g} s (SENTIMENT_BODY_TIMEOUT_S) a body must average "
            f"{MIN_BODY_RATE // 1024} KiB/s"
        )

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, deadline in self.waiting.items():
            if deadline <= now and task not in self.expired:
                self.expired.add(task)
                task.cancel()
        if self.waiting:
            loop.call_later(self.timeout_s / 4, self._sweep, loop)
        else:
            self.sweep_loop = None


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
        except (TimeoutError, BodyTimeout):  # (the body's own pace deadline, passed)
            break
        if message["type"] != "http.request":  # the client left
            break
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return dropped
