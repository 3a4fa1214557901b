"""uvicorn's httptools protocol with the two limits it lacks: a request head's size and time.

uvicorn buffers a request's head (request line and headers) without a limit and waits for
it without a deadline: one connection sending a huge header held as much of the server's
memory, and a connection that sends nothing, or a byte now and then, stayed open for good
(docs/security.md).
Here a head over ``MAX_HEAD_BYTES`` gets a 431 and the connection closes; a head not
complete ``HEAD_TIMEOUT_S`` after the connection opened (or, on a kept-alive connection,
after its first byte) gets a 408, or a silent close when nothing of it came.

The idle time between requests stays uvicorn's keep-alive timeout, and a body's pace is
``body.BodyDeadlines``'; a reverse proxy in front may set tighter limits of its own.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Above nginx's default head size; long cookies and tokens fit.
MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 10.0


def error_bytes(status: int, reason: str, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer in the service's error shape, closing the connection."""
    request_id = uuid.uuid4().hex  # every answer carries one (there was no request to log)
    error = {"code": code, "message": message, "details": []}
    body = json.dumps({"error": error, "request_id": request_id}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nx-request-id: {request_id}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class HeadDeadlines:
    """The connections awaiting a request head, each with its deadline; one sweep every
    quarter of the timeout answers the overdue. (A timer per request cost the event loop
    more, as one per body read did: ``body.BodyDeadlines``.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float):
        self.loop = loop
        self.timeout_s = timeout_s
        self.due: dict[GuardedHttpToolsProtocol, float] = {}
        self.sweeping = False

    def start(self, connection: GuardedHttpToolsProtocol) -> None:
        self.due[connection] = self.loop.time() + self.timeout_s
        if not self.sweeping:
            self.sweeping = True
            self.loop.call_later(self.timeout_s / 4, self._sweep)

    def stop(self, connection: GuardedHttpToolsProtocol) -> None:
        self.due.pop(connection, None)

    def _sweep(self) -> None:
        now = self.loop.time()
        try:
            for connection in [c for c, due in self.due.items() if due <= now]:
                del self.due[connection]
                connection.head_timed_out()
        finally:  # one connection's failure must not stop the sweeps for all the others
            if self.due:
                self.loop.call_later(self.timeout_s / 4, self._sweep)
            else:
                self.sweeping = False


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that refuses heads over ``MAX_HEAD_BYTES`` or ``HEAD_TIMEOUT_S``.

    Only ``data_received`` is wrapped, and in the usual case (a whole head in one chunk)
    it adds two comparisons: overriding the parser's callbacks too cost more
    (docs/performance.md). A head is awaited while no request is under way, or the last one
    has all its body or its answer; a new cycle means a head came.
    """

    max_head_bytes = MAX_HEAD_BYTES
    head_timeout_s = HEAD_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_bytes = 0  # of a head cut across chunks, so far
        self.deadlines = self._deadlines()
        self.timed = True  # has a deadline (the sweep may have ended it since)
        self.deadlines.start(self)  # a connection that sends nothing is closed too

    def _deadlines(self) -> HeadDeadlines:
        """The server's one ``HeadDeadlines`` (its connections share ``server_state``)."""
        state = self.server_state
        if not hasattr(state, "head_deadlines"):
            state.head_deadlines = HeadDeadlines(self.loop, self.head_timeout_s)  # type: ignore[attr-defined]
        return state.head_deadlines  # type: ignore[attr-defined]

    @property
    def awaiting_head(self) -> bool:
        """No request under way, or its body is all in, or already answered: what comes
        next is a head (or, after an early answer, the rest of a body uvicorn drops)."""
        cycle = self.cycle
        return cycle is None or not cycle.more_body or cycle.response_complete

    @property
    def answered_early(self) -> bool:
        """Answered before its body was all in (a 404, a health check): the rest of the body
        is thrown away as it comes, under a head's deadline (else it could trickle forever)."""
        return self.cycle is not None and self.cycle.more_body and self.cycle.response_complete

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        in_body = cycle is not None and cycle.more_body and not cycle.response_complete
        super().data_received(data)
        if self.cycle is not cycle:  # a head was completed
            if self.timed:
                self.head_bytes, self.timed = 0, False
                self.deadlines.stop(self)
        elif not in_body and self.awaiting_head and not self.transport.is_closing():
            self._part_of_a_head(len(data))
        # (A chunk that ends a body and starts the next head: that head is counted and
        # timed from its next chunk: at most one chunk of slack.)

    def _part_of_a_head(self, size: int) -> None:
        if not self.timed:  # (a new connection's runs from its opening)
            self.timed = True  # from its first chunk (the idle before: keep-alive's)
            self.deadlines.start(self)
        if self.answered_early:
            return  # dropped as it comes: it costs time, not memory
        self.head_bytes += size
        if self.head_bytes > self.max_head_bytes:
            message = f"the request line and headers exceed {self.max_head_bytes} bytes"
            self._refuse(
                error_bytes(431, "Request Header Fields Too Large", "header_too_large", message)
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self.deadlines.stop(self)
        super().connection_lost(exc)

    def head_timed_out(self) -> None:
        self.timed = False  # (the sweep has taken its deadline away)
        if not self.awaiting_head or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.timed = True  # a pipelined head waits while the answer is under way
            self.deadlines.start(self)
            return
        if not self.head_bytes or self.answered_early:
            self.transport.close()  # nothing of a request came, or it has its answer
            return
        message = f"the request line and headers did not arrive within {self.head_timeout_s:g} s"
        self._refuse(error_bytes(408, "Request Timeout", "header_timeout", message))

    def _refuse(self, answer: bytes) -> None:
        self.deadlines.stop(self)
        self.transport.write(answer)
        self.transport.close()
