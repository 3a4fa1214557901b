"""A served model: a verified bundle and the batcher that feeds it, swapped as one.

A request takes the active ``ModelRuntime`` once and uses its encoder and its batcher,
so it is always scored with one version's tokenizer *and* model, even while a swap
happens. The old runtime finishes what it accepted, then stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from service.errors import BundleError, NotReady
from service.inference.affinity import should_pin, usable_cpus
from service.inference.batcher import Batcher
from service.metrics import Metrics
from service.model.loader import Bundle, Speedups, load_bundle
from service.settings import Settings

log = logging.getLogger("service.model")


class ModelRuntime:
    """A bundle and its batcher, with a count of the requests currently using them."""

    def __init__(self, bundle: Bundle, batcher: Batcher):
        self.bundle = bundle
        self.batcher = batcher
        self._leases = 0
        self._unused = asyncio.Event()
        self._unused.set()

    def acquire(self) -> None:
        self._leases += 1
        self._unused.clear()

    def release(self) -> None:
        self._leases -= 1
        if self._leases == 0:
            self._unused.set()

    async def retire(self, timeout_s: float) -> None:
        """After a swap: wait until no request holds this runtime, then stop its batcher.

        A request that took the old runtime just before the swap is still scored by the
        old model with the old tokenizer, and never meets a stopped batcher.
        """
        try:
            await asyncio.wait_for(self._unused.wait(), timeout_s)
        except TimeoutError:
            log.warning("retiring a model still in use by %d requests", self._leases)
        await self.batcher.stop(timeout_s)


class ModelManager:
    """One served model: its active runtime, loaded from ``locate()``, swapped atomically."""

    def __init__(self, name: str, locate: Callable[[], Path], settings: Settings, metrics: Metrics):
        self.name = name
        self.locate = locate
        self.settings = settings
        self.metrics = metrics
        self.active: ModelRuntime | None = None
        self.not_ready_reason: str | None = "starting: the model bundle is not loaded yet"
        self._swap_lock = asyncio.Lock()

    def current(self) -> ModelRuntime:
        if self.active is None:
            raise NotReady(f"model {self.name!r} not ready: {self.not_ready_reason}")
        return self.active

    async def load_initial(self) -> None:
        try:
            self.active = await self._build_for_slot(self.locate())
        except BundleError as exc:
            self._stay_not_ready(str(exc))
            return
        except Exception as exc:  # unforeseen: this model stays out, the others still serve
            log.exception("model bundle failed to load", extra={"model": self.name})
            self._stay_not_ready(_unexpected(exc))
            return
        self.not_ready_reason = None
        self._publish(self.active)

    def _stay_not_ready(self, reason: str) -> None:
        self.not_ready_reason = reason
        self.metrics.model_ready(self.name, False)
        log.error(
            "model bundle refused; staying not-ready", extra={"model": self.name, "reason": reason}
        )

    async def activate(self, path: Path) -> ModelRuntime:
        """Load, verify and self-check ``path``, then switch to it atomically.

        On any failure the old model keeps serving and ``BundleError`` is raised.
        """
        async with self._swap_lock:
            try:
                new = await self._build_for_slot(path)
            except Exception as exc:
                self.metrics.model_swap(self.name, "refused")
                if isinstance(exc, BundleError):
                    raise
                log.exception("model bundle failed to load", extra={"model": self.name})
                raise BundleError(_unexpected(exc)) from exc
            old, self.active = self.active, new
            self.not_ready_reason = None
            self._publish(new)
            self.metrics.model_swap(self.name, "activated")
            log.info(
                "model activated",
                extra={
                    "model": self.name,
                    "version": new.bundle.version,
                    "previous": old and old.bundle.version,
                },
            )
        if old is not None:
            await old.retire(self.settings.drain_timeout_s)
        return new

    async def shutdown(self) -> None:
        self.metrics.model_ready(self.name, False)
        if self.active is not None:
            await self.active.batcher.stop(self.settings.drain_timeout_s)

    async def _build_for_slot(self, path: Path) -> ModelRuntime:
        """``_build``, refusing a bundle of another model (a copy in the wrong folder)."""
        runtime = await self._build(path)
        if runtime.bundle.name != self.name:
            await runtime.batcher.stop()
            raise BundleError(
                f"{path} is model {runtime.bundle.name!r}; this slot serves {self.name!r}"
            )
        return runtime

    async def _build(self, path: Path) -> ModelRuntime:
        s = self.settings
        bundle = await asyncio.to_thread(
            load_bundle,
            Path(path),
            variant=s.model_variant,
            intra_op_threads=s.intra_op_threads,
            speedups=speedups(s),
        )
        batcher = Batcher(
            bundle.run_groups,
            max_batch_size=s.max_batch_size,
            max_wait_s=s.max_wait_ms / 1000.0,
            queue_size=s.queue_size,
            workers=s.inference_workers,
            observer=self.metrics.batch_observer(bundle.name),
            pin_cpus=_pinned_cpus(s),
        )
        batcher.start()
        return ModelRuntime(bundle, batcher)

    def _publish(self, runtime: ModelRuntime) -> None:
        b = runtime.bundle
        self.metrics.set_model(b.name, b.version, b.variant)
        self.metrics.model_ready(self.name, True)


def _unexpected(exc: Exception) -> str:
    """A one-line reason for a failure no check foresaw (the traceback is in the log)."""
    first_line = (str(exc).splitlines() or [""])[0][:300]
    return f"the bundle failed to load: {type(exc).__name__}: {first_line}"


def speedups(s: Settings) -> Speedups:
    return Speedups(
        python_encoder=s.python_encoder,
        vocab_table=s.vocab_table,
        encode_on_loop=s.encode_on_loop,
        grouped_runs=s.grouped_runs,
        shared_arena=s.shared_arena,
    )


def _pinned_cpus(s: Settings) -> list[int] | None:
    if not should_pin(s.pin_inference_threads, s.inference_workers, s.intra_op_threads):
        if s.pin_inference_threads == "on":
            log.warning("SENTIMENT_PIN_INFERENCE_THREADS=on, but this platform cannot pin threads")
        return None
    cpus = usable_cpus()
    log.info("inference threads pinned, one per CPU", extra={"cpus": cpus})
    return cpus
