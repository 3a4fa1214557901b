"""Unit tests of the dynamic batcher with a fake scorer (no model here).

Timing is never asserted: where a bound matters it is a logical one (a result arrives
while another batch is provably still blocked, or well inside a 5 s wait).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from service.errors import InferenceFailed, Overloaded, ShuttingDown
from service.inference.batcher import Batcher
from tests.support.batching import as_run_groups, firsts
from tests.support.servers import wait_until

BLOCKER = 999  # a sequence of this length blocks its batch at the gate


def seq(n: int) -> list[int]:
    return [7] * n


class FakePredict:
    """Scores a sequence as len/1000 and records every batch (as lists of lengths)."""

    def __init__(self, fail_if: Callable[[list[int]], bool] = lambda lengths: False):
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail_if = fail_if
        self._lock = threading.Lock()

    def __call__(self, batch: list[list[int]]) -> list[float]:
        lengths = [len(ids) for ids in batch]
        with self._lock:
            self.batches.append(lengths)
        if BLOCKER in lengths:
            self.entered.set()
            if not self.gate.wait(timeout=30):
                raise RuntimeError("test gate never opened")
        if self.fail_if(lengths):
            raise ValueError("injected failure")
        return [n / 1000 for n in lengths]

    def all_lengths(self) -> list[int]:
        return [n for batch in self.batches for n in batch]


@pytest.fixture
async def make_batcher():
    made: list[tuple[Batcher, FakePredict]] = []

    def make(predict=None, **kwargs) -> tuple[Batcher, FakePredict]:
        predict = predict or FakePredict()
        batcher = Batcher(as_run_groups(predict), **kwargs)
        batcher.start()
        made.append((batcher, predict))
        return batcher, predict

    yield make
    for batcher, predict in made:
        if isinstance(predict, FakePredict):
            predict.gate.set()  # never leave a worker thread waiting
        await batcher.stop(timeout_s=10)


async def block_worker(batcher: Batcher, fake: FakePredict) -> asyncio.Task:
    """Occupy one worker with a batch that waits at the gate; returns its task."""
    task = asyncio.create_task(batcher.submit([seq(BLOCKER)]))
    await asyncio.to_thread(fake.entered.wait, 10)
    assert fake.entered.is_set(), "the blocking batch never reached predict"
    return task


async def test_results_in_input_order(make_batcher):
    batcher, _ = make_batcher()
    assert firsts(await batcher.submit([seq(3), seq(1), seq(7), seq(2)])) == pytest.approx(
        [0.003, 0.001, 0.007, 0.002]
    )
    assert firsts(await batcher.submit([])) == []


async def test_concurrent_callers_each_get_their_own_results(make_batcher):
    batcher, fake = make_batcher(max_batch_size=8, workers=1)
    blocked = await block_worker(batcher, fake)
    calls = [asyncio.create_task(batcher.submit([seq(n), seq(n + 100)])) for n in range(1, 21)]
    await wait_until(lambda: batcher.queue_depth == 40)
    fake.gate.set()
    results = await asyncio.wait_for(asyncio.gather(*calls), 10)
    for n, result in zip(range(1, 21), results, strict=True):
        assert firsts(result) == pytest.approx([n / 1000, (n + 100) / 1000])
    assert firsts(await blocked) == pytest.approx([BLOCKER / 1000])


async def test_a_request_spread_over_several_batches_gets_every_score_in_order(make_batcher):
    batcher, fake = make_batcher(max_batch_size=3, workers=1)
    result = firsts(await asyncio.wait_for(batcher.submit([seq(n) for n in range(1, 9)]), 10))
    assert result == pytest.approx([n / 1000 for n in range(1, 9)])
    assert fake.batches == [[1, 2, 3], [4, 5, 6], [7, 8]]


async def test_a_request_fails_when_any_of_its_batches_fails_and_its_rest_is_dropped(
    make_batcher,
):
    fake = FakePredict(fail_if=lambda lengths: 2 in lengths)
    batcher, _ = make_batcher(fake, max_batch_size=2, workers=1)
    blocked = await block_worker(batcher, fake)
    doomed = asyncio.create_task(batcher.submit([seq(n) for n in range(1, 7)]))
    await wait_until(lambda: batcher.queue_depth == 6)
    fake.gate.set()
    with pytest.raises(InferenceFailed):
        await asyncio.wait_for(doomed, 10)
    await blocked
    await asyncio.wait_for(batcher.submit([seq(9)]), 10)  # the queue has moved on
    assert [3, 4] not in fake.batches and [5, 6] not in fake.batches  # computed for nobody


async def test_size_cap(make_batcher):
    batcher, fake = make_batcher(max_batch_size=4, workers=1)
    blocked = await block_worker(batcher, fake)
    singles = [asyncio.create_task(batcher.submit([seq(n)])) for n in range(1, 11)]
    many = asyncio.create_task(batcher.submit([seq(n) for n in range(20, 33)]))
    await wait_until(lambda: batcher.queue_depth == 23)
    fake.gate.set()
    await asyncio.wait_for(asyncio.gather(blocked, many, *singles), 10)
    assert all(len(b) <= 4 for b in fake.batches), fake.batches
    assert sorted(fake.all_lengths()) == sorted([BLOCKER, *range(1, 11), *range(20, 33)])
    assert sum(1 for b in fake.batches if len(b) == 4) >= 5  # the cap was reached, not avoided


async def test_no_wait_when_idle(make_batcher):
    """A lone text on an idle batcher goes at once, even with a 5 s max_wait."""
    batcher, fake = make_batcher(max_wait_s=5.0)
    for _ in range(3):  # also when a previous batch has just finished
        result = await asyncio.wait_for(batcher.submit([seq(4)]), timeout=2.5)
        assert firsts(result) == pytest.approx([0.004])
    assert fake.batches == [[4], [4], [4]]


async def test_deadline_while_busy(make_batcher):
    """With one batch in flight, later texts wait for company at most max_wait, then go."""
    batcher, fake = make_batcher(max_wait_s=0.5, max_batch_size=64, workers=2)
    blocked = await block_worker(batcher, fake)
    first = asyncio.create_task(batcher.submit([seq(5)]))
    for _ in range(5):  # let the dispatcher take the second worker and start waiting
        await asyncio.sleep(0)
    second = asyncio.create_task(batcher.submit([seq(6)]))
    # Both arrive while the blocking batch is still at the gate: only the deadline can
    # have released them, and they went together as one batch.
    results = await asyncio.wait_for(asyncio.gather(first, second), timeout=10)
    assert [firsts(r) for r in results] == [pytest.approx([0.005]), pytest.approx([0.006])]
    assert not blocked.done()
    assert fake.batches[1:] == [[5, 6]]
    fake.gate.set()
    await blocked


async def test_wait_for_company_ends_when_nothing_else_runs(make_batcher):
    """Company is awaited only while another batch runs: when it finishes, the wait ends."""
    batcher, fake = make_batcher(max_wait_s=5.0, max_batch_size=64, workers=2)
    blocked = await block_worker(batcher, fake)
    waiting = asyncio.create_task(batcher.submit([seq(5)]))
    await wait_until(lambda: batcher.queue_depth == 1)
    for _ in range(5):  # the dispatcher takes the second worker and waits for company
        await asyncio.sleep(0)
    assert not waiting.done()
    fake.gate.set()  # the only running batch finishes: no reason left to wait
    assert firsts(await asyncio.wait_for(waiting, timeout=2.5)) == pytest.approx([0.005])
    await blocked
    assert fake.batches[-1] == [5]


async def test_full_batch_does_not_wait_for_the_deadline(make_batcher):
    batcher, fake = make_batcher(max_wait_s=30.0, max_batch_size=3, workers=2)
    blocked = await block_worker(batcher, fake)
    calls = [asyncio.create_task(batcher.submit([seq(n)])) for n in (1, 2, 3)]
    results = await asyncio.wait_for(asyncio.gather(*calls), timeout=10)  # far below 30 s
    assert [r[0][0] for r in results] == pytest.approx([0.001, 0.002, 0.003])
    assert fake.batches[1:] == [[1, 2, 3]]
    fake.gate.set()
    await blocked


async def test_error_fans_out_to_its_batch_only(make_batcher):
    fake = FakePredict(fail_if=lambda lengths: 13 in lengths)
    batcher, _ = make_batcher(fake, max_batch_size=8, workers=1)
    blocked = await block_worker(batcher, fake)
    doomed = [asyncio.create_task(batcher.submit([seq(n)])) for n in (12, 13, 14)]
    multi = asyncio.create_task(batcher.submit([seq(11), seq(15)]))
    await wait_until(lambda: batcher.queue_depth == 5)
    fake.gate.set()
    outcomes = await asyncio.wait_for(
        asyncio.gather(*doomed, multi, return_exceptions=True), timeout=10
    )
    assert len(fake.batches) == 2 and sorted(fake.batches[1]) == [11, 12, 13, 14, 15]
    for outcome in outcomes:  # every caller in the failed batch gets the error
        assert isinstance(outcome, InferenceFailed), outcome
        assert outcome.status_code == 500 and outcome.code == "inference_failed"
        assert "ValueError" in outcome.message
    assert firsts(await blocked) == pytest.approx([BLOCKER / 1000])  # earlier batch unaffected
    # the batcher keeps running: later batches succeed
    assert batcher.running
    assert firsts(await asyncio.wait_for(batcher.submit([seq(2), seq(3)]), 10)) == pytest.approx(
        [0.002, 0.003]
    )


async def test_wrong_number_of_scores_is_a_failed_batch(make_batcher):
    batcher, _ = make_batcher(lambda batch: [0.5])
    with pytest.raises(InferenceFailed):
        await asyncio.wait_for(batcher.submit([seq(1), seq(2)]), 10)
    assert firsts(await asyncio.wait_for(batcher.submit([seq(1)]), 10)) == [0.5]


async def test_timed_out_request_is_never_computed(make_batcher):
    batcher, fake = make_batcher(workers=1)
    blocked = await block_worker(batcher, fake)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(batcher.submit([seq(41), seq(42)]), timeout=0.05)
    survivor = asyncio.create_task(batcher.submit([seq(43)]))
    await wait_until(lambda: batcher.queue_depth >= 1)
    fake.gate.set()
    assert firsts(await asyncio.wait_for(survivor, 10)) == pytest.approx([0.043])
    await blocked
    assert 41 not in fake.all_lengths() and 42 not in fake.all_lengths()
    assert batcher.queue_depth == 0


async def test_cancelled_caller_is_dropped(make_batcher):
    batcher, fake = make_batcher(workers=1)
    blocked = await block_worker(batcher, fake)
    gone = asyncio.create_task(batcher.submit([seq(51)]))
    await wait_until(lambda: batcher.queue_depth == 1)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    fake.gate.set()
    await blocked
    assert firsts(await batcher.submit([seq(52)])) == pytest.approx([0.052])
    assert 51 not in fake.all_lengths()


async def test_bounded_queue_overloaded(make_batcher):
    batcher, fake = make_batcher(queue_size=3, workers=1)
    blocked = await block_worker(batcher, fake)  # in flight: not counted as queued
    waiting = asyncio.create_task(batcher.submit([seq(1), seq(2), seq(3)]))
    await wait_until(lambda: batcher.queue_depth == 3)
    with pytest.raises(Overloaded) as info:
        await batcher.submit([seq(4)])
    assert info.value.retry_after_s >= 1
    assert info.value.status_code == 503
    assert int(info.value.headers["Retry-After"]) == info.value.retry_after_s
    assert batcher.queue_depth == 3  # the refused text was not queued
    fake.gate.set()
    assert firsts(await asyncio.wait_for(waiting, 10)) == pytest.approx([0.001, 0.002, 0.003])
    await blocked
    assert 4 not in fake.all_lengths()
    assert firsts(await batcher.submit([seq(4)])) == pytest.approx([0.004])  # room again


async def test_oldest_first_keeps_requests_together(make_batcher):
    """Over max_batch_size pending: batches take the oldest texts, in arrival order."""
    batcher, fake = make_batcher(max_batch_size=3, workers=1)
    blocked = await block_worker(batcher, fake)
    first = asyncio.create_task(batcher.submit([seq(n) for n in (10, 50, 11)]))
    await wait_until(lambda: batcher.queue_depth == 3)
    second = asyncio.create_task(batcher.submit([seq(n) for n in (90, 9, 30, 48)]))
    await wait_until(lambda: batcher.queue_depth == 7)
    fake.gate.set()
    assert firsts(await asyncio.wait_for(first, 10)) == pytest.approx([0.010, 0.050, 0.011])
    assert firsts(await asyncio.wait_for(second, 10)) == pytest.approx([0.090, 0.009, 0.030, 0.048])
    await blocked
    # the first request is one whole batch; no text waits behind a later one
    assert [sorted(b) for b in fake.batches[1:]] == [[10, 11, 50], [9, 30, 90], [48]]


async def test_a_batch_is_shared_among_the_inference_threads(make_batcher):
    """A lone batch of texts with different lengths runs on every worker at once."""
    batcher, fake = make_batcher(max_batch_size=64, workers=2)
    lengths = [5, 6, 7, 8, 200, 210, 220, 230]
    scores = firsts(await batcher.submit([seq(n) for n in lengths]))
    assert scores == pytest.approx([n / 1000 for n in lengths])
    assert len(fake.batches) == 2  # two jobs, one per worker, in the same batch
    assert sorted(n for b in fake.batches for n in b) == sorted(lengths)


async def test_stop_drains_then_refuses(make_batcher):
    batcher, fake = make_batcher(workers=1, max_batch_size=2)
    blocked = await block_worker(batcher, fake)
    accepted = [asyncio.create_task(batcher.submit([seq(n)])) for n in (1, 2, 3)]
    await wait_until(lambda: batcher.queue_depth == 3)
    stopping = asyncio.create_task(batcher.stop(timeout_s=10))
    await asyncio.sleep(0)  # stop() has begun: new work is refused at once
    with pytest.raises(ShuttingDown):
        await batcher.submit([seq(4)])
    fake.gate.set()
    await asyncio.wait_for(stopping, 15)
    results = await asyncio.gather(blocked, *accepted)
    assert [r[0][0] for r in results] == pytest.approx([BLOCKER / 1000, 0.001, 0.002, 0.003])
    assert not batcher.running
    with pytest.raises(ShuttingDown):
        await batcher.submit([seq(5)])
    assert 4 not in fake.all_lengths() and 5 not in fake.all_lengths()


async def test_submit_before_start_is_refused():
    batcher = Batcher(as_run_groups(FakePredict()))
    with pytest.raises(ShuttingDown):
        await batcher.submit([seq(1)])
    await batcher.stop()


async def test_observer_sees_batches(make_batcher):
    seen: dict[str, list] = {"done": [], "depth": [], "wait": []}

    class Observer:
        def batch_done(self, size, seconds, padding_ratio):
            seen["done"].append((size, padding_ratio))

        def queue_wait(self, seconds):
            seen["wait"].append(seconds)

        def queue_depth(self, depth):
            seen["depth"].append(depth)

    batcher, _ = make_batcher(observer=Observer())
    await batcher.submit([seq(2), seq(4)])
    assert seen["done"] == [(2, pytest.approx(0.25))]  # 6 real of 8 slots: 25 % padding
    assert len(seen["wait"]) == 2 and all(w >= 0 for w in seen["wait"])
    assert seen["depth"][0] == 0  # reported per batch: the texts still waiting after it


async def test_a_drain_that_times_out_still_answers_every_text(make_batcher):
    """stop() gives up after its timeout: texts whose jobs never ran get ShuttingDown."""

    def slow(batch: list[list[int]]) -> list[float]:
        threading.Event().wait(0.5)
        return [len(ids) / 1000 for ids in batch]

    batcher, _ = make_batcher(slow, workers=2, max_batch_size=4)
    # two batches, each split into two shares: four jobs for two threads
    first = asyncio.create_task(batcher.submit([seq(n) for n in (2, 3, 300, 310)]))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(batcher.submit([seq(n) for n in (4, 5, 400, 410)]))
    await asyncio.sleep(0.05)
    await batcher.stop(timeout_s=0.2)
    outcomes = await asyncio.wait_for(
        asyncio.gather(first, second, return_exceptions=True), timeout=5
    )
    for outcome in outcomes:
        assert isinstance(outcome, (list, ShuttingDown)), outcome
    assert any(isinstance(o, ShuttingDown) for o in outcomes)


async def test_a_failing_job_waits_for_its_sibling(make_batcher):
    """One thread's share fails: the batch fails, but only after the other share finished."""
    finished: list[int] = []

    def predict(batch: list[list[int]]) -> list[float]:
        lengths = [len(ids) for ids in batch]
        if 2 in lengths:
            raise ValueError("injected failure")
        threading.Event().wait(0.3)
        finished.extend(lengths)
        return [n / 1000 for n in lengths]

    batcher, _ = make_batcher(predict, workers=2)
    with pytest.raises(InferenceFailed):
        await asyncio.wait_for(batcher.submit([seq(n) for n in (2, 3, 300, 310)]), 10)
    assert sorted(finished) == [300, 310]  # the sibling job ran to its end first
