"""Pinning the inference threads to CPUs, one each (``SENTIMENT_PIN_INFERENCE_THREADS``).

Why: where there are no more CPUs than inference threads, the event loop and the
encoding thread run on the inference threads' CPUs too, and the scheduler moves the
inference threads from CPU to CPU to make room; each move leaves the model's weights in
the other core's cache. Pinned, the inference threads stay put and the other threads
fill the gaps. On 2 CPUs, 64-review requests at concurrency 4, two servers measured in
alternating 3 s slices: +5% texts/s pinned, ahead in each of 12 slices
(docs/performance.md, "Step 7"). Where CPUs outnumber the threads the scheduler has room
and "auto" leaves them alone; with several intra-op threads onnxruntime runs its own pool.
"on" pins whatever the machine: meant for a process that owns its CPUs (an exclusive
cpuset). Every process counts from the first CPU of its mask, so processes that share a
mask (several uvicorn workers, or containers limited by CPU quota only, whose mask is the
whole host) pin onto the same CPUs; "auto" does not fire there.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable
from typing import Literal

log = logging.getLogger("service.affinity")

PinMode = Literal["auto", "on", "off"]


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask: a container's cpuset)."""
    if not hasattr(os, "sched_getaffinity"):  # (not Linux)
        return []
    return sorted(os.sched_getaffinity(0))


def should_pin(mode: PinMode, threads: int, intra_op_threads: int) -> bool:
    """Whether ``threads`` inference threads should each be pinned to a CPU."""
    cpus = usable_cpus()
    if mode == "off" or not cpus or not hasattr(os, "sched_setaffinity"):
        return False
    if mode == "on":
        return True
    # Only an even spread: 3 threads on 2 CPUs would put two of a batch's three equal
    # chunks on one CPU, a third slower than leaving them to the scheduler.
    return intra_op_threads == 1 and threads >= len(cpus) and threads % len(cpus) == 0


def thread_pinner(cpus: list[int]) -> Callable[[], None]:
    """A thread initializer: the k-th thread to call it is pinned to ``cpus[k % len]``."""
    order = itertools.count()  # (next() on a count is atomic under the GIL)

    def pin_this_thread() -> None:
        cpu = cpus[next(order) % len(cpus)]
        try:
            os.sched_setaffinity(0, {cpu})  # 0: the calling thread
        except OSError as exc:  # e.g. the CPU left the cpuset: run unpinned
            log.warning("could not pin an inference thread to CPU %d: %s", cpu, exc)

    return pin_this_thread
