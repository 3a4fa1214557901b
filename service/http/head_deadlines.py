"""The deadlines of the connections awaiting a request head (``protocol``'s 408)."""

from __future__ import annotations

import asyncio
from typing import Protocol


class Connection(Protocol):
    def head_timed_out(self) -> None: ...


class HeadDeadlines:
    """The connections awaiting a request head, each with its deadline; one sweep every
    quarter of the timeout answers the overdue. (A timer per request cost the event loop
    more, as one per body read did: ``body.BodyDeadlines``.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float):
        self.loop = loop
        self.timeout_s = timeout_s
        self.due: dict[Connection, float] = {}
        self.sweeping = False

    def start(self, connection: Connection) -> None:
        self.due[connection] = self.loop.time() + self.timeout_s
        if not self.sweeping:
            self.sweeping = True
            self.loop.call_later(self.timeout_s / 4, self._sweep)

    def stop(self, connection: Connection) -> None:
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
