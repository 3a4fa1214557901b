"""Where a server is in its life (serving, lame duck, closing) and the gate that answers
every request with 503 + ``Retry-After`` + ``Connection: close`` while it closes.

``service.http.graceful.GracefulServer`` moves the phases on SIGTERM; the app reads them:
``/health/ready`` says "shutting down" from the lame duck on, and ``ShutdownGate`` turns
requests away once the server stops accepting work. A server that never receives a signal
(Ray Serve's replicas, tests' in-process apps) stays in ``SERVING``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ShuttingDown
from service.http.body import lingering_send
from service.http.error_handlers import service_error_response
from service.metrics import Metrics


class Phase(enum.Enum):
    SERVING = "serving"
    LAME_DUCK = "lame_duck"  # not ready, still serving: load balancers take it out
    CLOSING = "closing"  # every new request: 503 + Retry-After + Connection: close


class Lifecycle:
    """The phase, read on every request (a plain attribute: set from a signal handler)."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.phase = Phase.SERVING
        self.metrics = metrics

    @property
    def stopping(self) -> bool:
        return self.phase is not Phase.SERVING

    def report_not_ready(self) -> None:
        """The ``sentiment_ready`` gauge to 0 (on the event loop: the gauge takes a lock,
        which a signal handler must not)."""
        if self.metrics is not None:
            self.metrics.ready.set(0)


class ShutdownGate:
    """While closing: 503 + ``Retry-After`` + ``Connection: close`` for every request, the
    body read and dropped first (as for a 413: a client that sends its whole body before
    reading, like urllib, would otherwise see a reset instead of the answer)."""

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle):
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.lifecycle.phase is not Phase.CLOSING:
            try:
                return await self.app(scope, receive, send)
            except asyncio.CancelledError:
                # uvicorn cancels what still runs once the drain and its grace are over
                # and would answer 500: a request that has no answer yet gets this 503.
                if not self.lifecycle.stopping:
                    raise
                asyncio.current_task().uncancel()
                with contextlib.suppress(RuntimeError):  # (its answer had already begun)
                    await self._refuse(scope, receive, send)
                return
        await self._refuse(scope, receive, lingering_send(scope, receive, send))

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = service_error_response(Request(scope, receive), ShuttingDown())
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
