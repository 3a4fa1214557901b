"""Pinning inference threads to CPUs: the rule, the pinning itself, and its wiring."""

from __future__ import annotations

import os
import threading

import pytest

import service.inference.affinity as affinity
from service.inference.affinity import should_pin, thread_pinner, usable_cpus
from service.inference.batcher import Batcher
from service.model.runtime import _pinned_cpus
from service.settings import Settings
from tests.support.batching import as_run_groups, firsts

linux_only = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity"), reason="thread affinity is a Linux call"
)


@pytest.mark.parametrize(
    ("cpus", "mode", "threads", "intra", "pinned"),
    [
        ([0, 1], "auto", 2, 1, True),  # as many threads as CPUs: pin
        ([0, 1], "auto", 4, 1, True),  # two per CPU: still an even spread
        ([0, 1], "auto", 3, 1, False),  # one CPU would get two of three equal chunks
        ([0, 1, 2, 3], "auto", 2, 1, False),  # room to spare: the scheduler decides
        ([0, 1], "auto", 2, 2, False),  # onnxruntime's own intra-op pool
        ([0, 1, 2, 3], "on", 2, 1, True),
        ([0, 1], "off", 2, 1, False),
        ([], "on", 2, 1, False),  # no affinity calls on this platform
    ],
)
@linux_only
def test_the_pinning_rule(monkeypatch, cpus, mode, threads, intra, pinned):
    monkeypatch.setattr(affinity, "usable_cpus", lambda: cpus)
    assert should_pin(mode, threads, intra) == pinned


def _affinity_in_new_thread(initializer) -> set[int]:
    seen: list[set[int]] = []

    def run() -> None:
        initializer()
        seen.append(os.sched_getaffinity(0))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen[0]


@linux_only
def test_each_new_thread_gets_the_next_cpu_and_the_caller_stays_free():
    cpus = usable_cpus()
    before = os.sched_getaffinity(0)
    pin = thread_pinner(cpus)
    got = [_affinity_in_new_thread(pin) for _ in range(len(cpus) + 1)]
    assert got == [{cpu} for cpu in cpus] + [{cpus[0]}]  # in turn, then round again
    assert os.sched_getaffinity(0) == before  # only the threads that called it


@linux_only
def test_a_cpu_that_cannot_be_used_leaves_the_thread_unpinned(caplog):
    before = os.sched_getaffinity(0)
    assert _affinity_in_new_thread(thread_pinner([10_000])) == before
    assert "could not pin" in caplog.text


@linux_only
async def test_the_batchers_inference_threads_run_pinned():
    cpus = usable_cpus()
    seen: list[set[int]] = []
    lock = threading.Lock()

    def predict(batch):
        with lock:
            seen.append(frozenset(os.sched_getaffinity(0)))
        return [0.5] * len(batch)

    batcher = Batcher(as_run_groups(predict), workers=2, max_batch_size=1, pin_cpus=cpus)
    batcher.start()
    try:
        for _ in range(8):
            assert firsts(await batcher.submit([[1, 2, 3]])) == [0.5]
    finally:
        await batcher.stop()
    assert seen and all(len(s) == 1 and next(iter(s)) in cpus for s in seen)


@linux_only
def test_settings_choose_the_cpus(monkeypatch):
    monkeypatch.setattr(affinity, "usable_cpus", lambda: [0, 1])
    import service.model.runtime as runtime

    monkeypatch.setattr(runtime, "usable_cpus", lambda: [0, 1])
    assert _pinned_cpus(Settings(inference_workers=2)) == [0, 1]
    assert _pinned_cpus(Settings(inference_workers=2, pin_inference_threads="off")) is None
    assert _pinned_cpus(Settings(inference_workers=1)) is None  # 1 thread, 2 CPUs: auto says no
