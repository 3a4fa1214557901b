"""Dynamic batching: merge texts from concurrent requests into onnxruntime batches.

One small module owns the queue. Every text carries a future; a dispatcher task forms
batches and hands them to a thread pool (onnxruntime releases the GIL), so inference
never runs on the event loop.

Batch forming rules:
- a batch is sent as soon as a worker is free; only while another batch is already
  running does it wait (at most ``max_wait_s`` after its oldest text arrived, monotonic
  clock) for company, so a lone request on an idle server is never held back;
- at most ``max_batch_size`` texts; when more are waiting, the oldest text goes first
  with the waiting texts closest to it in length (less padding, and no starvation:
  every text becomes the oldest eventually);
- a failed batch fails exactly its own texts; texts whose caller gave up (timeout,
  disconnect) are dropped before inference instead of being computed for nobody;
- the queue is bounded (in texts): beyond it ``submit`` raises ``Overloaded`` at once
  with a Retry-After estimated from the queue depth and recent batch times. A caller
  that must do work before submitting (tokenizing) takes room first with ``admit``, so
  the bound covers texts being encoded too, and a burst is refused before any of that
  work is done rather than after it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from service.errors import InferenceFailed, Overloaded, ShuttingDown
from service.packing import pack_by_length, padding_share

log = logging.getLogger("service.batcher")

PredictFn = Callable[[list[list[int]]], Sequence[float]]


class BatchObserver:
    """Hooks for metrics; the default does nothing."""

    def batch_done(self, size: int, seconds: float, padding_ratio: float) -> None: ...
    def queue_wait(self, seconds: float) -> None: ...
    def queue_depth(self, depth: int) -> None: ...


class Admission:
    """Room for ``texts`` texts in the queue, taken by ``Batcher.admit`` before encoding."""

    __slots__ = ("texts",)

    def __init__(self, texts: int):
        self.texts = texts


@dataclass(eq=False)
class _Item:
    ids: list[int]
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)


class Batcher:
    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch_size: int = 64,
        max_wait_s: float = 0.002,
        queue_size: int = 2048,
        workers: int = 2,
        observer: BatchObserver | None = None,
    ):
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size
        self.workers = workers
        self._observer = observer or BatchObserver()
        self._pending: list[_Item] = []
        self._admitted = 0  # texts admitted (counted against queue_size) but not queued yet
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(workers)
        self._in_flight: set[asyncio.Task] = set()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inference")
        self._dispatcher: asyncio.Task | None = None
        self._closing = False
        self._seconds_per_text = 0.001  # EMA of batch time / batch size, for Retry-After

    # -- public -----------------------------------------------------------------------
    def start(self) -> None:
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="batcher")

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    @property
    def admitted(self) -> int:
        """Texts holding room in the queue while their requests encode them."""
        return self._admitted

    @property
    def running(self) -> bool:
        return self._dispatcher is not None and not self._dispatcher.done()

    def retry_after_s(self) -> int:
        waiting = len(self._pending) + self._admitted
        backlog = (waiting + self.max_batch_size * len(self._in_flight)) / self.workers
        return max(1, math.ceil(backlog * self._seconds_per_text))

    def admit(self, texts: int) -> Admission:
        """Take room for ``texts`` texts now, before encoding them; ``Overloaded`` if full.

        Pass the result to ``submit``; call ``withdraw`` if the texts will not be submitted.
        """
        self._check_room(texts)
        self._admitted += texts
        return Admission(texts)

    def withdraw(self, admission: Admission) -> None:
        """Give back the room of an admission that was not submitted (no-op after submit)."""
        self._admitted -= admission.texts
        admission.texts = 0

    def _check_room(self, texts: int) -> None:
        if self._closing or not self.running:
            raise ShuttingDown()
        waiting = len(self._pending) + self._admitted
        if waiting + texts > self.queue_size:
            raise Overloaded(
                f"server busy: {waiting} texts queued or being encoded (limit {self.queue_size})",
                self.retry_after_s(),
            )

    async def submit(
        self, sequences: Sequence[list[int]], admission: Admission | None = None
    ) -> list[float]:
        """Score encoded texts; results in input order. Cancel the call to give up.

        With an ``admission`` from ``admit`` the texts take the room reserved for them.
        """
        if admission is not None:
            self.withdraw(admission)  # the texts themselves now hold that room
            if self._closing or not self.running:
                raise ShuttingDown()
        else:
            self._check_room(len(sequences))
        loop = asyncio.get_running_loop()
        items = [_Item(list(ids), loop.create_future()) for ids in sequences]
        self._pending.extend(items)
        self._observer.queue_depth(len(self._pending))
        self._wakeup.set()
        try:
            return list(await asyncio.gather(*(i.future for i in items)))
        except BaseException:
            for item in items:  # timeout, disconnect or a failed batch: drop the rest
                item.future.cancel()
            raise

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stop taking texts, finish every accepted one, then release the workers."""
        self._closing = True
        self._wakeup.set()
        if self._dispatcher is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._dispatcher), timeout_s)
                if self._in_flight:
                    await asyncio.wait(set(self._in_flight), timeout=timeout_s)
            except TimeoutError:
                log.error("batcher drain timed out; failing what is left")
                self._dispatcher.cancel()
                for item in self._pending:
                    item.future.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- dispatcher ----------------------------------------------------------------------
    async def _dispatch(self) -> None:
        while True:
            await self._slots.acquire()
            batch = await self._next_batch()
            if batch is None:  # closing and nothing left
                self._slots.release()
                return
            task = asyncio.create_task(self._execute(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _next_batch(self) -> list[_Item] | None:
        while True:
            self._drop_abandoned()
            if not self._pending:
                if self._closing:
                    return None
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._in_flight and len(self._pending) < self.max_batch_size:
                await self._wait_for_company()
                self._drop_abandoned()
                if not self._pending:
                    continue
            return self._take_batch()

    async def _wait_for_company(self) -> None:
        deadline = self._pending[0].enqueued + self.max_wait_s
        while len(self._pending) < self.max_batch_size and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _drop_abandoned(self) -> None:
        if any(i.future.done() for i in self._pending):
            self._pending = [i for i in self._pending if not i.future.done()]

    def _take_batch(self) -> list[_Item]:
        pending = self._pending
        if len(pending) <= self.max_batch_size:
            self._pending = []
            return pending
        anchor = len(pending[0].ids)
        by_closeness = sorted(
            range(1, len(pending)), key=lambda k: (abs(len(pending[k].ids) - anchor), k)
        )
        chosen = {0, *by_closeness[: self.max_batch_size - 1]}
        self._pending = [item for k, item in enumerate(pending) if k not in chosen]
        return [pending[k] for k in sorted(chosen)]

    async def _execute(self, batch: list[_Item]) -> None:
        started = time.monotonic()
        for item in batch:
            self._observer.queue_wait(started - item.enqueued)
        self._observer.queue_depth(len(self._pending))
        sequences = [item.ids for item in batch]
        try:
            loop = asyncio.get_running_loop()
            scores = await loop.run_in_executor(self._executor, self._predict, sequences)
            if len(scores) != len(batch):
                raise RuntimeError(f"predict returned {len(scores)} scores for {len(batch)} texts")
        except Exception as exc:
            log.exception("inference failed for a batch of %d texts", len(batch))
            error = InferenceFailed(
                f"inference failed for the batch holding this request ({type(exc).__name__}); "
                "other requests are unaffected, retry is safe"
            )
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
        else:
            for item, score in zip(batch, scores, strict=True):
                if not item.future.done():
                    item.future.set_result(float(score))
        finally:
            seconds = time.monotonic() - started
            self._seconds_per_text = 0.8 * self._seconds_per_text + 0.2 * seconds / len(batch)
            self._observer.batch_done(len(batch), seconds, _padding_ratio(sequences))
            self._slots.release()


def _padding_ratio(sequences: Sequence[Sequence[int]]) -> float:
    """Share of the cells onnxruntime computes that are padding, as the bundle packs them."""
    lengths = [len(s) for s in sequences]
    return padding_share(lengths, pack_by_length(lengths))
