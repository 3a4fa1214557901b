"""Dynamic batching: merge texts from concurrent requests into onnxruntime batches.

One small module owns the queue. Every request carries a future, and each of its texts
a reference to it (one future per text, gathered, cost the event loop about 2 µs per
text); a dispatcher task forms batches and hands them to a thread pool (onnxruntime
releases the GIL), so inference never runs on the event loop.

Batch forming rules:
- a batch is sent as soon as a worker is free; only while another batch is already
  running does it wait (at most ``max_wait_s`` after its oldest text arrived, monotonic
  clock) for company, so a lone request on an idle server is never held back. The wait
  also ends the moment no other batch is running: company is worth waiting for only
  while the inference threads have other work, never with them idle;
- at most ``max_batch_size`` texts, oldest first: a request's texts stay together, so
  it is answered by as few batches as possible (picking texts of similar length from
  the whole queue split big requests across batches and cost throughput; padding is
  handled inside the batch, by its length groups);
- a batch is cut into length-sorted groups (service/packing.py), and the groups are
  shared among the inference threads, so even a lone batch uses all of them;
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

from service.affinity import thread_pinner
from service.errors import InferenceFailed, Overloaded, ShuttingDown
from service.packing import pack_by_length, padding_share

log = logging.getLogger("service.batcher")

PredictFn = Callable[[list[Sequence[int]]], Sequence[float]]


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


class _Request:
    """One ``submit`` call: its future gets every score once the last one is in."""

    __slots__ = ("future", "remaining", "scores")

    def __init__(self, future: asyncio.Future, size: int):
        self.future = future
        self.scores = [0.0] * size
        self.remaining = size


class _Item:
    """One text in the queue: its ids, and where its score goes."""

    __slots__ = ("enqueued", "future", "ids", "index", "request")

    def __init__(self, ids: Sequence[int], request: _Request, index: int, enqueued: float):
        self.ids = ids
        self.request = request
        self.future = request.future  # (read per item by the queue's checks)
        self.index = index
        self.enqueued = enqueued


class Batcher:
    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch_size: int = 128,
        max_wait_s: float = 0.002,
        queue_size: int = 2048,
        workers: int = 2,
        observer: BatchObserver | None = None,
        pin_cpus: list[int] | None = None,
    ):
        """``pin_cpus``: pin the inference threads to these CPUs, one each, in turn
        (service/affinity.py); None leaves them to the scheduler."""
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
        self._executor = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix="inference",
            initializer=thread_pinner(pin_cpus) if pin_cpus else None,
        )
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
        self, sequences: Sequence[Sequence[int]], admission: Admission | None = None
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
        if not sequences:
            return []
        request = _Request(asyncio.get_running_loop().create_future(), len(sequences))
        now = time.monotonic()
        items = [_Item(ids, request, k, now) for k, ids in enumerate(sequences)]
        self._pending.extend(items)  # (the depth gauge is updated per batch, not per request)
        self._wakeup.set()
        try:
            return await request.future
        except BaseException:
            # Timeout, disconnect or a failed batch: its texts still queued are dropped.
            request.future.cancel()
            raise

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stop taking texts, finish every accepted one, then release the workers."""
        self._closing = True
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
            task.add_done_callback(self._batch_finished)

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
        while self._in_flight and len(self._pending) < self.max_batch_size and not self._closing:
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

    def _drop_abandoned(self) -> None:
        if any(i.future.done() for i in self._pending):
            self._pending = [i for i in self._pending if not i.future.done()]

    def _take_batch(self) -> list[_Item]:
        batch = self._pending[: self.max_batch_size]
        self._pending = self._pending[self.max_batch_size :]
        return batch

    async def _run_split(
        self, sequences: list[Sequence[int]], lengths: list[int], groups: list[list[int]]
    ) -> list[float]:
        """Run the batch's length groups as one job per inference thread, in parallel."""
        chunks = _balanced_chunks(groups, lengths, self.workers)
        loop = asyncio.get_running_loop()
        # Every chunk finishes before the batch does (its slot stays taken meanwhile),
        # even when one of them fails.
        results = await asyncio.gather(
            *(
                loop.run_in_executor(self._executor, self._predict, [sequences[i] for i in chunk])
                for chunk in chunks
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        scores: list[float] = [0.0] * len(sequences)
        for chunk, chunk_scores in zip(chunks, results, strict=True):
            if len(chunk_scores) != len(chunk):
                raise RuntimeError(
                    f"predict returned {len(chunk_scores)} scores for {len(chunk)} texts"
                )
            for i, score in zip(chunk, chunk_scores, strict=True):
                scores[i] = score
        return scores

    async def _execute(self, batch: list[_Item]) -> None:
        started = time.monotonic()
        for item in batch:
            self._observer.queue_wait(started - item.enqueued)
        self._observer.queue_depth(len(self._pending))
        sequences = [item.ids for item in batch]
        lengths = [len(s) for s in sequences]
        groups = pack_by_length(lengths)
        try:
            scores = await self._run_split(sequences, lengths, groups)
            if len(scores) != len(batch):
                raise RuntimeError(f"predict returned {len(scores)} scores for {len(batch)} texts")
        except asyncio.CancelledError:
            # stop() gave up draining and cancelled the jobs still queued: answer anyway.
            _fail(batch, ShuttingDown("the server stopped before this batch ran; retry"))
            raise
        except Exception as exc:
            log.exception("inference failed for a batch of %d texts", len(batch))
            _fail(
                batch,
                InferenceFailed(
                    f"inference failed for the batch holding this request ({type(exc).__name__}); "
                    "other requests are unaffected, retry is safe"
                ),
            )
        else:
            for item, score in zip(batch, scores, strict=True):
                request = item.request
                if not request.future.done():
                    request.scores[item.index] = float(score)
                    request.remaining -= 1
                    if not request.remaining:
                        request.future.set_result(request.scores)
        finally:
            seconds = time.monotonic() - started
            self._seconds_per_text = 0.8 * self._seconds_per_text + 0.2 * seconds / len(batch)
            self._observer.batch_done(len(batch), seconds, padding_share(lengths, groups))
            self._slots.release()


def _fail(batch: list[_Item], error: BaseException) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(error)


def _balanced_chunks(groups: list[list[int]], lengths: list[int], n: int) -> list[list[int]]:
    """Split length groups into at most ``n`` chunks of about equal padded cells."""
    if n <= 1 or len(groups) <= 1:
        return [sorted(i for g in groups for i in g)]
    chunks: list[list[int]] = [[] for _ in range(min(n, len(groups)))]
    cells = [0] * len(chunks)
    for group in sorted(groups, key=lambda g: -max(lengths[i] for i in g) * len(g)):
        k = cells.index(min(cells))
        chunks[k].extend(group)
        cells[k] += max(lengths[i] for i in group) * len(group)
    return [sorted(chunk) for chunk in chunks]  # each in batch order
