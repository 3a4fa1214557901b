"""The batcher's queue: texts waiting for a batch, bounded in texts, with admission.

A request takes room (``admit``) before it encodes its texts, so the bound covers texts
being encoded too and a burst is refused before any of that work is done.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from service.errors import Overloaded, ShuttingDown
from service.inference.batch import Item


class Admission:
    """Room for ``texts`` texts in the queue, taken by ``TextQueue.admit`` before encoding."""

    __slots__ = ("texts",)

    def __init__(self, texts: int):
        self.texts = texts


class TextQueue:
    def __init__(self, size: int):
        self.size = size
        self.pending: list[Item] = []
        self.admitted = 0  # texts holding room while their requests encode them
        self.closed = False

    def __len__(self) -> int:
        return len(self.pending)

    def waiting(self) -> int:
        return len(self.pending) + self.admitted

    def check_room(self, texts: int, retry_after_s: Callable[[], int]) -> None:
        """``ShuttingDown`` once closed; ``Overloaded`` if ``texts`` more would not fit."""
        if self.closed:
            raise ShuttingDown()
        if self.waiting() + texts > self.size:
            raise Overloaded(
                f"server busy: {self.waiting()} texts queued or being encoded (limit {self.size})",
                retry_after_s(),
            )

    def admit(self, texts: int) -> Admission:
        self.admitted += texts
        return Admission(texts)

    def withdraw(self, admission: Admission) -> None:
        """Give back the room of an admission that was not used (a no-op once used)."""
        self.admitted -= admission.texts
        admission.texts = 0

    def take(self, n: int) -> list[Item]:
        """The ``n`` oldest texts (a request's texts stay in arrival order)."""
        batch, self.pending = self.pending[:n], self.pending[n:]
        return batch

    def drop_abandoned(self) -> None:
        """Forget texts whose caller gave up (timeout, disconnect, a failed batch)."""
        if any(item.future.done() for item in self.pending):
            self.pending = [item for item in self.pending if not item.future.done()]


def retry_after(waiting: int, running_texts: int, workers: int, seconds_per_text: float) -> int:
    """Seconds until the backlog should have cleared (at least 1)."""
    return max(1, math.ceil((waiting + running_texts) / workers * seconds_per_text))
