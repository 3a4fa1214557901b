"""Prometheus metrics, one registry per app (so tests can build many apps).

Every series about requests, texts, batches or models carries a ``model`` label: the model
that answered (empty for requests no model took part in, such as /health or a 404).
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from service.inference.batch import BatchObserver

# The *_created series double the output and are derivable from the process start.
disable_created_metrics()

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_RATIO_BUCKETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._http_metrics(self.registry)
        self._batch_metrics(self.registry)
        self._model_metrics(self.registry)
        # labels() hashes and locks on every call; the hot path reuses the children.
        self._children: dict[tuple, tuple] = {}
        self._served: dict[str, tuple[str, str, str]] = {}  # model -> its info labels
        self._model_is_ready: dict[str, bool] = {}

    def _http_metrics(self, r: CollectorRegistry) -> None:
        self.requests = Counter(
            "sentiment_requests", "HTTP requests by route, status and model",
            ["route", "status", "model"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "sentiment_request_seconds", "HTTP request latency", ["route", "model"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.texts = Counter(
            "sentiment_texts", "Texts scored or tokenized", ["route", "model"], registry=r
        )
        self.rejected = Counter(
            "sentiment_rejected", "Requests refused or timed out (503/504) by reason and model",
            ["reason", "model"], registry=r,
        )  # fmt: skip

    def _batch_metrics(self, r: CollectorRegistry) -> None:
        self.queue_wait_seconds = Histogram(
            "sentiment_queue_wait_seconds", "Time a text waited for its batch", ["model"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inference_seconds = Histogram(
            "sentiment_inference_seconds", "onnxruntime time per batch", ["model"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "sentiment_batch_size", "Texts per batch", ["model"], buckets=_BATCH_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.padding_ratio = Histogram(
            "sentiment_padding_ratio", "Share of each batch's computed cells that is padding",
            ["model"], buckets=_RATIO_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_depth_gauge = Gauge(
            "sentiment_queue_depth", "Texts waiting for a batch", ["model"], registry=r
        )

    def _model_metrics(self, r: CollectorRegistry) -> None:
        self.model_info = Gauge(
            "sentiment_model_info", "The served version of each model (value 1)",
            ["name", "model", "version", "variant"], registry=r,  # name: the first release's
        )  # fmt: skip
        self.ready = Gauge("sentiment_ready", "1 when every served model is ready", registry=r)
        self.model_ready_gauge = Gauge(
            "sentiment_model_ready", "1 when the model is ready", ["model"], registry=r
        )
        self.model_swaps = Counter(
            "sentiment_model_swaps", "Model activations by outcome", ["model", "outcome"],
            registry=r,
        )  # fmt: skip

    def request_done(self, route: str, status: int, seconds: float, model: str = "") -> None:
        key = (route, status, model)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(route=route, status=str(status), model=model),
                self.latency.labels(route=route, model=model),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_texts(self, route: str, n: int, model: str) -> None:
        key = ("texts", route, model)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.texts.labels(route=route, model=model)
        child.inc(n)

    def batch_observer(self, model: str) -> BatchObserver:
        return _ModelBatches(self, model)

    def set_model(self, name: str, version: str, variant: str) -> None:
        if (old := self._served.pop(name, None)) is not None:
            self.model_info.remove(*old)
        self._served[name] = (name, name, version, variant)
        self.model_info.labels(name=name, model=name, version=version, variant=variant).set(1)

    def model_ready(self, name: str, ready: bool) -> None:
        self._model_is_ready[name] = ready
        self.model_ready_gauge.labels(model=name).set(1 if ready else 0)
        self.ready.set(1 if all(self._model_is_ready.values()) else 0)

    def rejected_request(self, reason: str, model: str = "") -> None:
        self.rejected.labels(reason=reason, model=model).inc()

    def model_swap(self, name: str, outcome: str) -> None:
        self.model_swaps.labels(model=name, outcome=outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ModelBatches(BatchObserver):
    """One model's batch metrics (the children bound once, used on every batch)."""

    def __init__(self, metrics: Metrics, model: str):
        self._size = metrics.batch_size.labels(model=model)
        self._seconds = metrics.inference_seconds.labels(model=model)
        self._padding = metrics.padding_ratio.labels(model=model)
        self._wait = metrics.queue_wait_seconds.labels(model=model)
        self._depth = metrics.queue_depth_gauge.labels(model=model)

    def batch_done(self, size: int, seconds: float, padding_ratio: float) -> None:
        self._size.observe(size)
        self._seconds.observe(seconds)
        self._padding.observe(padding_ratio)

    def queue_wait(self, seconds: float) -> None:
        self._wait.observe(seconds)

    def queue_depth(self, depth: int) -> None:
        self._depth.set(depth)
