"""Dynamic batching: texts from concurrent requests merged into onnxruntime batches.

Each request carries one future; a dispatcher task forms batches and hands them to a
pool of inference threads (onnxruntime releases the GIL), so inference never runs on the
event loop. ``batch.run_batch`` scores a batch; this module owns the queue.

Batch forming:
- a batch goes as soon as an inference slot is free; only while another batch is
  running does it wait for company (at most ``max_wait_s`` after its oldest text
  arrived), and that wait ends the moment nothing else runs;
- at most ``max_batch_size`` texts, oldest first: a request's texts stay together, so it
  is answered by as few batches as possible (padding is handled by length groups);
- texts whose caller gave up (timeout, disconnect) are dropped before inference;
- the queue is bounded in texts: beyond it, ``Overloaded`` (503) at once, with a
  Retry-After from the backlog. A caller that must work before submitting (encoding)
  takes room first with ``admit``, so a burst is refused before that work is done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from service.errors import ShuttingDown
from service.inference.affinity import thread_pinner
from service.inference.batch import (
    BatchObserver,
    Item,
    Request,
    Row,
    RunGroups,
    fail,
    failure,
    run_batch,
    stopped,
)
from service.inference.queue import Admission, TextQueue, retry_after

log = logging.getLogger("service.batcher")


class Batcher:
    def __init__(
        self,
        run_groups: RunGroups,
        *,
        max_batch_size: int = 128,
        max_wait_s: float = 0.002,
        queue_size: int = 2048,
        workers: int = 2,
        observer: BatchObserver | None = None,
        pin_cpus: list[int] | None = None,
    ):
        """``pin_cpus``: pin the inference threads to these CPUs, one each, in turn
        (``affinity``); None leaves them to the scheduler."""
        self._run_groups = run_groups
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.workers = workers
        self._observer = observer or BatchObserver()
        self._queue = TextQueue(queue_size)
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(workers)
        self._in_flight: set[asyncio.Task] = set()
        self._executor = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix="inference",
            initializer=thread_pinner(pin_cpus) if pin_cpus else None,
        )
        self._dispatcher: asyncio.Task | None = None
        self._seconds_per_text = 0.001  # moving average, for Retry-After

    # -- callers ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="batcher")

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def admitted(self) -> int:
        return self._queue.admitted

    @property
    def running(self) -> bool:
        return self._dispatcher is not None and not self._dispatcher.done()

    def retry_after_s(self) -> int:
        running = self.max_batch_size * len(self._in_flight)
        return retry_after(self._queue.waiting(), running, self.workers, self._seconds_per_text)

    def admit(self, texts: int) -> Admission:
        """Take room for ``texts`` texts now, before encoding them; ``Overloaded`` if full.

        Pass the result to ``submit``; call ``withdraw`` if the texts will not be submitted.
        """
        self._check_room(texts)
        return self._queue.admit(texts)

    def withdraw(self, admission: Admission) -> None:
        """Give back the room of an admission that was not submitted (no-op after submit)."""
        self._queue.withdraw(admission)

    def _check_room(self, texts: int) -> None:
        if not self.running:
            raise ShuttingDown()
        self._queue.check_room(texts, self.retry_after_s)

    async def submit(
        self, sequences: Sequence[Sequence[int]], admission: Admission | None = None
    ) -> list[Row]:
        """The model's output row for each encoded text, in order. Cancel to give up."""
        if admission is not None:
            self.withdraw(admission)  # the texts themselves now hold that room
            if self._queue.closed or not self.running:
                raise ShuttingDown()
        else:
            self._check_room(len(sequences))
        if not sequences:
            return []
        request = Request(asyncio.get_running_loop().create_future(), len(sequences))
        now = time.monotonic()
        self._queue.pending.extend(Item(ids, request, k, now) for k, ids in enumerate(sequences))
        self._wakeup.set()
        try:
            return await request.future
        except BaseException:
            # Timeout, disconnect or a failed batch: its texts still queued are dropped.
            request.future.cancel()
            raise

    def refuse_queued(self) -> int:
        """Stop taking texts and answer those still queued with 503 (the drain has run out
        of time); batches already running finish. The texts refused."""
        self._queue.closed = True
        refused = self._queue.pending
        self._queue.pending = []
        fail(refused, stopped())
        self._wakeup.set()
        return len(refused)

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stop taking texts, finish every accepted one, then release the threads."""
        self._queue.closed = True
        self._wakeup.set()
        if self._dispatcher is not None:
            try:
                if not self._dispatcher.done():  # (a second stop() finds it finished)
                    await asyncio.wait_for(asyncio.shield(self._dispatcher), timeout_s)
                if self._in_flight:
                    _, late = await asyncio.wait(set(self._in_flight), timeout=timeout_s)
                    if late:
                        log.error("batcher drain timed out; %d batches still running", len(late))
            except TimeoutError:
                log.error("batcher drain timed out; failing what is left")
                self._dispatcher.cancel()
                self.refuse_queued()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- dispatcher ------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        while True:
            await self._slots.acquire()
            batch = await self._next_batch()
            if batch is None:  # closing and nothing left
                self._slots.release()
                return
            task = asyncio.create_task(self._execute(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._batch_finished)

    async def _next_batch(self) -> list[Item] | None:
        queue = self._queue
        while True:
            queue.drop_abandoned()
            if not queue.pending:
                if queue.closed:
                    return None
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._in_flight and len(queue) < self.max_batch_size:
                await self._wait_for_company()
                queue.drop_abandoned()
                if not queue.pending:
                    continue
            return queue.take(self.max_batch_size)

    async def _wait_for_company(self) -> None:
        queue = self._queue
        deadline = queue.pending[0].enqueued + self.max_wait_s
        while self._in_flight and len(queue) < self.max_batch_size and not queue.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _batch_finished(self, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        self._wakeup.set()  # a dispatcher waiting for company stops once nothing runs

    async def _execute(self, batch: list[Item]) -> None:
        started = time.monotonic()
        for item in batch:
            self._observer.queue_wait(started - item.enqueued)
        self._observer.queue_depth(len(self._queue))
        padding = 0.0
        try:
            padding = await run_batch(batch, self._run_groups, self._executor, self.workers)
        except asyncio.CancelledError:
            fail(batch, stopped())  # stop() gave up draining: answer anyway
            raise
        except Exception as exc:
            log.exception("inference failed for a batch of %d texts", len(batch))
            fail(batch, failure(exc))
        finally:
            seconds = time.monotonic() - started
            self._seconds_per_text = 0.8 * self._seconds_per_text + 0.2 * seconds / len(batch)
            self._observer.batch_done(len(batch), seconds, padding)
            self._slots.release()
