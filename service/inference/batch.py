"""One batch through the scorer: packed into length groups once, shared among the
inference threads, and every caller answered, or failed, from it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

from service.errors import InferenceFailed, ShuttingDown
from service.inference.packing import balanced_shares, pack_by_length, padding_share

Row = list[float]  # the model's output for one text
# A length group's token ids in, one output row per text out (``Scorer.run_groups``).
RunGroups = Callable[[list[Sequence[Sequence[int]]]], Sequence[Sequence[Sequence[float]]]]


class BatchObserver:
    """Hooks for metrics; the default does nothing."""

    def batch_done(self, size: int, seconds: float, padding_ratio: float) -> None: ...
    def queue_wait(self, seconds: float) -> None: ...
    def queue_depth(self, depth: int) -> None: ...


class Request:
    """One ``submit`` call: its future gets every row once the last one is in."""

    __slots__ = ("future", "remaining", "rows")

    def __init__(self, future: asyncio.Future, size: int):
        self.future = future
        self.rows: list[Row | None] = [None] * size
        self.remaining = size


class Item:
    """One text in the queue: its ids, and where its row goes."""

    __slots__ = ("enqueued", "future", "ids", "index", "request")

    def __init__(self, ids: Sequence[int], request: Request, index: int, enqueued: float):
        self.ids = ids
        self.request = request
        self.future = request.future  # (read per item by the queue's checks)
        self.index = index
        self.enqueued = enqueued


async def run_batch(
    batch: list[Item], run_groups: RunGroups, executor: Executor, threads: int
) -> float:
    """Score ``batch`` and answer its requests; returns the share of padding computed."""
    lengths = [len(item.ids) for item in batch]
    groups = pack_by_length(lengths)
    shares = balanced_shares(groups, lengths, threads)
    loop = asyncio.get_running_loop()
    jobs = [
        loop.run_in_executor(executor, _score_share, run_groups, _ids(batch, share))
        for share in shares
    ]
    # Every share finishes before the batch does (its slot stays taken meanwhile), even
    # when one of them fails.
    results = await asyncio.gather(*jobs, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    for share, outputs in zip(shares, results, strict=True):
        for group, rows in zip(share, outputs, strict=True):
            _answer(batch, group, rows)
    return padding_share(lengths, groups)


def _ids(batch: list[Item], share: list[list[int]]) -> list[list[Sequence[int]]]:
    return [[batch[i].ids for i in group] for group in share]


def _score_share(run_groups: RunGroups, groups: list[list[Sequence[int]]]) -> list[list[Row]]:
    """On an inference thread: the share's rows as plain lists (no numpy on the loop)."""
    outputs = run_groups(groups)
    rows = [out.tolist() if hasattr(out, "tolist") else list(out) for out in outputs]
    for group, got in zip(groups, rows, strict=True):
        if len(got) != len(group):
            raise RuntimeError(f"the model returned {len(got)} rows for {len(group)} texts")
    return rows


def _answer(batch: list[Item], group: list[int], rows: list[Row]) -> None:
    for i, row in zip(group, rows, strict=True):
        request = batch[i].request
        if not request.future.done():
            request.rows[batch[i].index] = row
            request.remaining -= 1
            if not request.remaining:
                request.future.set_result(request.rows)


def fail(batch: list[Item], error: BaseException) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(error)


def failure(exc: BaseException) -> InferenceFailed:
    return InferenceFailed(
        f"inference failed for the batch holding this request ({type(exc).__name__}); "
        "other requests are unaffected, retry is safe"
    )


def stopped() -> ShuttingDown:
    return ShuttingDown("the server stopped before this batch ran; retry")
