"""Inference threads pinned to CPUs, one each (``SENTIMENT_PIN_INFERENCE_THREADS``).

Why: where there are no more CPUs than inference threads, the event loop and encoding
run on the inference threads' CPUs too, and the scheduler moves the inference threads
around to make room; each move leaves the model's weights in another core's cache.
Pinned, they stay put and the other threads fill the gaps (docs/performance.md).
"auto" pins only where CPUs are that few and the threads spread evenly; "on" pins
whatever the machine, for a process that owns its CPUs (processes sharing a CPU mask
would all pin onto the same first CPUs); "off" leaves them to the scheduler.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable
from typing import Literal

log = logging.getLogger("service.inference")

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
