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
import logging
import sys
import uuid
from dataclasses import dataclass, field

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.http.body import LINGER_IDLE_S, LINGER_MAX_BYTES, LINGER_MAX_S
from service.http.head_deadlines import HeadDeadlines

# Above nginx's default head size; long cookies and tokens fit.
MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 10.0
REQUEST_LINE_BYTES = 16  # what a parsed head leaves out of its request line: method, version
# The parent's callbacks, called directly: super() in them cost 0.7-1 µs a request more
# (docs/performance.md), on every request's path.
_HEADERS_COMPLETE = HttpToolsProtocol.on_headers_complete
_MESSAGE_COMPLETE = HttpToolsProtocol.on_message_complete
log = logging.getLogger("service.access")  # a refused head is no request the middleware sees


class HeadTooLarge(Exception):
    """Raised in a parser callback: httptools stops, uvicorn calls ``send_400_response``."""


@dataclass(frozen=True)
class Refusal:
    """The answer to a refused head: written in turn, and logged once written."""

    status: int
    reason: str
    code: str
    message: str
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # every answer has one

    def wire(self) -> bytes:
        """The whole HTTP/1.1 answer in the service's error shape, closing the connection."""
        error = {"code": self.code, "message": self.message, "details": []}
        body = json.dumps({"error": error, "request_id": self.request_id}).encode()
        head = (
            f"HTTP/1.1 {self.status} {self.reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nx-request-id: {self.request_id}\r\n"
            "connection: close\r\n\r\n"
        )
        return head.encode("ascii") + body


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
        self.pending: Refusal | None = None  # a refusal waiting for the answers before it
        self.stopping = False  # the server is shutting down: no lingering close
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

    def _too_large(self) -> Refusal:
        message = f"the request line and headers exceed {self.max_head_bytes} bytes"
        return Refusal(431, "Request Header Fields Too Large", "header_too_large", message)

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
        self._refuse(Refusal(408, "Request Timeout", "header_timeout", message))

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes its parser refuses (plain text, "Invalid HTTP request
        received."), in the service's error shape and naming what the parser found."""
        error = sys.exc_info()[1]  # (uvicorn calls this in its except block)
        if isinstance(getattr(error, "__context__", None), HeadTooLarge):
            self._refuse(self._too_large())
            return
        message = f"malformed HTTP request: {str(error or '')[:200] or 'not HTTP/1.1'}"
        self._refuse(Refusal(400, "Bad Request", "bad_request", message))

    def _refuse(self, refusal: Refusal) -> None:
        """Answer in turn, end our side, and close once the client is quiet (a lingering
        close, as the 413's: ``body.discard_body``)."""
        self.deadlines.stop(self)
        cycle = self.cycle
        if self.pipeline:  # requests wait for their answers: ours comes after theirs
            self._refuse_after_the_queue(refusal)
            return
        if cycle is not None and not cycle.response_complete:
            if not cycle.more_body:  # the refused bytes came after it: answer it first
                self.lingering, self.pending = True, refusal  # (what comes is dropped)
                cycle.on_response = self._in_turn
                return
            if cycle.response_started:  # ours would land inside its answer
                self.transport.close()
                return
            # Its own body broke the parser: it is answered in its app's place.
            cycle.disconnected, cycle.waiting_for_100_continue = True, False
            cycle.message_event.set()
        self._answer(refusal)

    def _refuse_after_the_queue(self, refusal: Refusal) -> None:
        """Each pipelined request is answered in turn, then ``refusal``. The newest (this
        cycle, first in uvicorn's queue) is answered first if whole; if its own body broke
        the parser, the refusal takes its turn instead of its app."""
        self.lingering, self.pending = True, refusal  # (what comes meanwhile is dropped)
        cycle, _ = self.pipeline[0]
        if not cycle.more_body:
            cycle.on_response = self._in_turn
            return

        async def refused(scope: object, receive: object, send: object) -> None:
            cycle.disconnected = True  # (so uvicorn adds no 500 of its own)
            self._answer(refusal)

        self.pipeline[0] = (cycle, refused)

    def _in_turn(self) -> None:
        """The answer before a waiting refusal is complete (uvicorn's callback, replaced)."""
        self.server_state.total_requests += 1
        if self.pending is not None:
            self._answer(self.pending)

    def _answer(self, refusal: Refusal) -> None:
        self.pending = None
        if self.transport.is_closing():  # the answer before it closed the connection
            return
        self.transport.write(refusal.wire())
        client = self.client[0] if self.client else None
        r = refusal
        extra = {"status": r.status, "error": r.code, "client": client, "request_id": r.request_id}
        log.info("refused %d %s", r.status, r.message, extra=extra)
        if not self.transport.can_write_eof() or self.stopping:  # (TLS; shutting down)
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
        self.stopping = True
        if self.pending is not None:  # it ends the connection, after the answers before it
            return
        cycle = self.cycle
        if self.lingering and (cycle is None or cycle.response_complete or cycle.disconnected):
            self.transport.close()  # refused: nothing more to answer
            return
        super().shutdown()
