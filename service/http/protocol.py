"""uvicorn's httptools protocol with the two limits it lacks: a request head's size and time.

uvicorn buffers a request's head (request line and headers) without a limit and waits for
it without a deadline: one connection sending a huge header held as much of the server's
memory, and a connection that sends nothing, or a byte now and then, stayed open for good
(docs/security.md).
Here a head over ``MAX_HEAD_BYTES`` gets a 431 and the connection closes; a head not
complete ``HEAD_TIMEOUT_S`` after the connection opened (or, on a kept-alive connection,
after its first byte) gets a 408, or a silent close when nothing of it came. Either answer
is followed by a lingering close, as the 413 is: what the client still sends is read and
dropped for a moment, since closing with unread bytes resets the connection, and a reset
can destroy the answer before the client reads it.

The idle time between requests stays uvicorn's keep-alive timeout, and a body's pace is
``body.BodyDeadlines``'; a reverse proxy in front may set tighter limits of its own.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.http.body import LINGER_IDLE_S, LINGER_MAX_BYTES, LINGER_MAX_S

# Above nginx's default head size; long cookies and tokens fit.
MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 10.0
REQUEST_LINE_BYTES = 16  # what a parsed head leaves out of its request line: method, version
# The parent's callbacks, called directly: super() in them cost 0.7-1 µs a request more
# (docs/performance.md), on every request's path.
_HEADERS_COMPLETE = HttpToolsProtocol.on_headers_complete
_MESSAGE_COMPLETE = HttpToolsProtocol.on_message_complete


class HeadTooLarge(Exception):
    """Raised in a parser callback: httptools stops, uvicorn calls ``send_400_response``."""


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

    ``data_received`` counts a head cut across chunks; a head that completes in a chunk
    that could hold more than the limit is measured as it completes; uvicorn's plain 400
    is reworded. The usual request pays a few comparisons (docs/performance.md). A head is
    awaited while no request is under way, or the last one has all its body or its
    answer; a new cycle means a head came.
    """

    max_head_bytes = MAX_HEAD_BYTES
    head_timeout_s = HEAD_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_bytes = 0  # of a head cut across chunks, so far
        self.big_read = False  # this chunk could complete a head over the limit
        self.head_unseen = False  # a head may have begun, uncounted, after a body ended
        self.bodiless = 0  # bytes of chunks inside a body that carried none of it: trailers
        self.lingering = False  # answered and closing: what comes is dropped
        self.lingered, self.linger_start, self.last_heard = 0, 0.0, 0.0
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
        if self.lingering:
            self._drop(len(data))
            return
        cycle = self.cycle
        coming = cycle is not None and cycle.more_body  # a body not all in yet
        in_body = coming and not cycle.response_complete
        dropping = coming and cycle.response_complete  # answered early: dropped as it comes
        # (Measured only where a head completes: a big read inside a body costs nothing.)
        self.big_read = self.head_unseen or self.head_bytes + len(data) > self.max_head_bytes
        body_before = len(cycle.body) if in_body else 0
        super().data_received(data)
        if self.lingering:  # refused while parsing it
            return
        if in_body and self.cycle is cycle and cycle.more_body:
            self._inside_a_body(len(data), len(cycle.body) > body_before)
            return
        if self.cycle is not cycle:  # a head was completed
            self.head_unseen = False
            if self.timed:
                self.head_bytes, self.timed = 0, False
                self.deadlines.stop(self)
        elif (in_body or dropping) and self.awaiting_head and not self.answered_early:
            # The body ended in this chunk, and the next head may have begun in it: that
            # head is counted from the next chunk and measured when it completes.
            self.head_unseen = True
            self._part_of_a_head(0)
        elif not in_body and self.awaiting_head and not self.transport.is_closing():
            self._part_of_a_head(0 if dropping else len(data))

    def _inside_a_body(self, size: int, carried_body: bool) -> None:
        """A chunked body's trailer fields are headers the parser holds: limited as a head."""
        self.bodiless = 0 if carried_body else self.bodiless + size
        if self.bodiless > self.max_head_bytes:
            self._refuse(self._too_large())

    def on_headers_complete(self) -> None:
        if self.big_read and self._head_size() > self.max_head_bytes:
            raise HeadTooLarge
        _HEADERS_COMPLETE(self)

    def _head_size(self) -> int:
        """The head as parsed: its request line and header lines, CRLFs and all."""
        lines = sum(len(name) + len(value) + 4 for name, value in self.headers)
        return REQUEST_LINE_BYTES + len(self.url) + lines + 2

    def on_message_complete(self) -> None:
        _MESSAGE_COMPLETE(self)
        if self.cycle is not None:  # (uvicorn leaves an early-answered body "coming" for good)
            self.cycle.more_body = False

    def _too_large(self) -> bytes:
        message = f"the request line and headers exceed {self.max_head_bytes} bytes"
        return error_bytes(431, "Request Header Fields Too Large", "header_too_large", message)

    def _part_of_a_head(self, size: int) -> None:
        if not self.timed:  # (a new connection's runs from its opening)
            self.timed = True  # from its first chunk (the idle before: keep-alive's)
            self.deadlines.start(self)
        if self.answered_early:
            return  # dropped as it comes: it costs time, not memory
        self.head_bytes += size
        if self.head_bytes > self.max_head_bytes:
            self._refuse(self._too_large())

    def connection_lost(self, exc: Exception | None) -> None:
        self.deadlines.stop(self)
        super().connection_lost(exc)

    def head_timed_out(self) -> None:
        self.timed = False  # (the sweep has taken its deadline away)
        if self.lingering or not self.awaiting_head or self.transport.is_closing():
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

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes its parser refuses (plain text, "Invalid HTTP request
        received."), in the service's error shape and naming what the parser found."""
        error = sys.exc_info()[1]  # (uvicorn calls this in its except block)
        if isinstance(getattr(error, "__context__", None), HeadTooLarge):
            self._refuse(self._too_large())
            return
        message = f"malformed HTTP request: {str(error or '')[:200] or 'not HTTP/1.1'}"
        self._refuse(error_bytes(400, "Bad Request", "bad_request", message))

    def _refuse(self, answer: bytes) -> None:
        """Answer in turn, end our side, and close once the client is quiet (a lingering
        close, as the 413's: ``body.discard_body``); at once if answers are queued."""
        self.deadlines.stop(self)
        cycle = self.cycle
        if self.pipeline:  # requests wait for their answers: ours would come out of turn
            self.transport.close()
            return
        if cycle is not None and not cycle.response_complete:
            if not cycle.more_body:  # the refused bytes came after it: answer it first
                self.lingering = True  # (what comes meanwhile is dropped)
                cycle.on_response = lambda: self._answer(answer)
                return
            if cycle.response_started:  # ours would land inside its answer
                self.transport.close()
                return
            # Its own body broke the parser: it is answered in its app's place.
            cycle.disconnected, cycle.waiting_for_100_continue = True, False
            cycle.message_event.set()
        self._answer(answer)

    def _answer(self, answer: bytes) -> None:
        self.transport.write(answer)
        if not self.transport.can_write_eof():  # (TLS)
            self.transport.close()
            return
        self.transport.write_eof()  # the client reads the answer, then the end
        self.lingering = True
        self.linger_start = self.last_heard = self.loop.time()
        self.flow.resume_reading()  # (paused while a body waited for its app)
        self.loop.call_later(LINGER_IDLE_S, self._end_linger)

    def _drop(self, size: int) -> None:
        self.lingered += size
        self.last_heard = self.loop.time()
        if self.lingered > LINGER_MAX_BYTES:
            self.transport.close()

    def _end_linger(self) -> None:
        now = self.loop.time()
        quiet_for = now - self.last_heard
        if quiet_for >= LINGER_IDLE_S or now - self.linger_start >= LINGER_MAX_S:
            self.transport.close()
        elif not self.transport.is_closing():
            left = min(LINGER_IDLE_S - quiet_for, self.linger_start + LINGER_MAX_S - now)
            self.loop.call_later(left, self._end_linger)

    def shutdown(self) -> None:
        cycle = self.cycle
        if self.lingering and (cycle is None or cycle.response_complete or cycle.disconnected):
            self.transport.close()  # refused: nothing more to answer
            return
        super().shutdown()
