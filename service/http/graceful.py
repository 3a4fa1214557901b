"""A shutdown that resets no connection: uvicorn's server, with three phases on SIGTERM.

1. **Lame duck** (``SENTIMENT_LAME_DUCK_S``): ``/health/ready`` answers 503 "shutting
   down" at once, everything else is served as before, so that load balancers polling
   readiness take the instance out while it still answers. SIGINT (Ctrl+C at a terminal)
   and a second signal skip what is left of it.
2. **Closing** (at most ``CLOSE_WINDOW_S``): every request gets 503 + ``Retry-After`` +
   ``Connection: close`` (``lifecycle.ShutdownGate``). The listener stays open but takes
   no new connection (Linux: a socket filter drops new SYNs, so a client's connect waits
   and is refused once the process has gone, never reset after sending), and the
   connections already in its accept queue are accepted and answered. The phase ends
   when the queue is empty and every accepted connection has sent its request.
3. **Drain**, uvicorn's own: the listener closes, in-flight requests finish within
   ``SENTIMENT_DRAIN_TIMEOUT_S``, then the app's lifespan stops the batchers. Texts still
   queued when that time is up are answered 503 "shutting down" (``refuse_queued``);
   batches already running get ``DRAIN_GRACE_S`` more before uvicorn cancels what is left
   (whose requests ``lifecycle.ShutdownGate`` still answers with a 503, not uvicorn's 500).

Without phase 2, closing the listener resets the connections in its queue: clients that
open a connection per request (urllib) got resets on 3 SIGTERMs out of 4 (issue 18).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

from service.http.lifecycle import Lifecycle, Phase

log = logging.getLogger("service.shutdown")

CLOSE_WINDOW_S = 2.0  # upper bound of phase 2 (a client that connects and never sends)
DRAIN_GRACE_S = 2.0  # after the drain timeout: running batches finish, 503s are written
# Handshakes under way when the filter goes on finish into the accept queue within a
# round trip; this covers them.
HANDSHAKE_SETTLE_S = 0.1
_POLL_S = 0.01

# Classic BPF on a listening TCP socket sees each segment from its TCP header: drop those
# with SYN set and ACK clear (new connections); let the rest (handshakes completing) pass.
_SO_ATTACH_FILTER = 26
_DROP_NEW_CONNECTIONS = [
    (0x30, 0, 0, 13),  # ldb [13]          the flags byte
    (0x54, 0, 0, 0x12),  # and #0x12       SYN | ACK
    (0x15, 0, 1, 0x02),  # jeq #0x02       SYN alone?
    (0x06, 0, 0, 0),  # ret #0             drop
    (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1   keep the whole segment
]
_TCP_INFO_LEN = 104
_TCPI_UNACKED_AT = 24  # on a listener: the accept queue's length (Linux)


class GracefulServer(uvicorn.Server):
    """``uvicorn.Server`` whose SIGTERM runs the lame duck and the closing phase first."""

    def __init__(
        self,
        config: uvicorn.Config,
        lifecycle: Lifecycle,
        lame_duck_s: float,
        refuse_queued: Callable[[], int] = lambda: 0,
    ):
        super().__init__(config)
        self.lifecycle = lifecycle
        self.lame_duck_s = lame_duck_s
        self.refuse_queued = refuse_queued
        self._drain_deadline: asyncio.Task | None = None
        self.close_window_s = CLOSE_WINDOW_S
        self._asked_at: float | None = None
        self._hurry = False
        self._stopping: asyncio.Task | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: flags only; on_tick starts the work on the event loop.
        if self._asked_at is None:
            self._captured_signals.append(sig)  # uvicorn re-raises it once shut down
            self._asked_at = time.monotonic()
            # Ctrl+C, or a signal before the server listened: no one routes to it yet.
            self._hurry = sig == signal.SIGINT or not self.started
            self.lifecycle.phase = Phase.LAME_DUCK  # /health/ready: 503 from now on
        elif not self.should_exit:
            self._hurry = True  # a second signal: no more lame duck
        else:
            super().handle_exit(sig, frame)  # draining: uvicorn's (a second Ctrl+C forces)

    async def on_tick(self, counter: int) -> bool:
        if self._asked_at is not None and self._stopping is None:
            self._stopping = asyncio.create_task(self._stop_accepting())
        return await super().on_tick(counter)

    async def _stop_accepting(self) -> None:
        try:
            await self._lame_duck()
            await self._close()
        finally:
            self.should_exit = True  # uvicorn's drain takes over on its next tick
            self._drain_deadline = asyncio.create_task(self._refuse_after_drain())

    async def _refuse_after_drain(self) -> None:
        """At the drain timeout, answer queued texts with 503 while uvicorn still waits."""
        timeout = self.config.timeout_graceful_shutdown
        if timeout is None:
            return
        await asyncio.sleep(max(timeout - DRAIN_GRACE_S, 0.0))
        if refused := self.refuse_queued():
            log.warning("drain timed out: queued texts answered 503", extra={"texts": refused})

    async def _lame_duck(self) -> None:
        self.lifecycle.report_not_ready()
        until = self._asked_at + self.lame_duck_s
        if not self._hurry and self.lame_duck_s > 0:
            log.info("shutting down: not ready, serving on", extra={"seconds": self.lame_duck_s})
        while not self._hurry and time.monotonic() < until:
            await asyncio.sleep(_POLL_S * 5)

    async def _close(self) -> None:
        """Phase 2: answer the accept queue and every accepted connection with a 503."""
        self.lifecycle.phase = Phase.CLOSING
        listeners = [s for server in getattr(self, "servers", []) for s in server.sockets]
        filtered = all(refuse_new_connections(s) for s in listeners)
        started = time.monotonic()
        deadline = started + self.close_window_s
        await asyncio.sleep(HANDSHAKE_SETTLE_S)
        while time.monotonic() < deadline:
            queued = sum(accept_queue_length(s) or 0 for s in listeners)
            if queued == 0 and not self._awaiting_a_request():
                break
            await asyncio.sleep(_POLL_S)
        log.info(
            "stopped accepting",
            extra={
                "seconds": round(time.monotonic() - started, 3),
                "new_connections_refused": filtered,
            },
        )

    def _awaiting_a_request(self) -> bool:
        """Accepted connections that have not sent a request yet (their client may be
        sending it now: closing them would reset it). uvicorn's HTTP/1.1 protocols set
        ``cycle`` at a request's first byte; a refused head's connection is only lingering."""
        return any(
            getattr(c, "cycle", False) is None and not getattr(c, "lingering", False)
            for c in self.server_state.connections
        )


def refuse_new_connections(sock: socket.socket) -> bool:
    """Make a listening socket drop new connections' SYNs while it keeps its accept queue
    (Linux; elsewhere nothing happens and False is returned). A dropped SYN is sent again
    by the client a second later, by when the listener is closed: connection refused."""
    if not sys.platform.startswith("linux") or sock.family not in (
        socket.AF_INET,
        socket.AF_INET6,
    ):
        return False
    code = b"".join(struct.pack("HBBI", *insn) for insn in _DROP_NEW_CONNECTIONS)
    program = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(_DROP_NEW_CONNECTIONS), ctypes.addressof(program))
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)  # the kernel copies it
    except OSError as exc:
        log.warning("cannot stop new connections before closing: %s", exc)
        return False
    return True


def accept_queue_length(sock: socket.socket) -> int | None:
    """Connections waiting in a listening socket's accept queue (Linux), else None."""
    if not sys.platform.startswith("linux") or sock.family not in (
        socket.AF_INET,
        socket.AF_INET6,
    ):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    except OSError:
        return None
    return struct.unpack_from("I", info, _TCPI_UNACKED_AT)[0]
