"""Prometheus metrics, one registry per app (so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from service.inference.batch import BatchObserver

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_RATIO_BUCKETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)


class Metrics(BatchObserver):
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._http_metrics(self.registry)
        self._batch_metrics(self.registry)
        self._model_metrics(self.registry)
        # labels() hashes and locks on every call; the hot path reuses the children.
        self._children: dict[tuple, tuple] = {}

    def _http_metrics(self, r: CollectorRegistry) -> None:
        self.requests = Counter(
            "sentiment_requests", "HTTP requests by route and status", ["route", "status"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "sentiment_request_seconds", "HTTP request latency", ["route"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.texts = Counter("sentiment_texts", "Texts scored or tokenized", ["route"], registry=r)
        self.rejected = Counter(
            "sentiment_rejected", "Requests refused or timed out (503/504) by reason", ["reason"],
            registry=r,
        )  # fmt: skip

    def _batch_metrics(self, r: CollectorRegistry) -> None:
        self.queue_wait_seconds = Histogram(
            "sentiment_queue_wait_seconds", "Time a text waited for its batch",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inference_seconds = Histogram(
            "sentiment_inference_seconds", "onnxruntime time per batch",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "sentiment_batch_size", "Texts per batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.padding_ratio = Histogram(
            "sentiment_padding_ratio", "Share of each batch's computed cells that is padding",
            buckets=_RATIO_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_depth_gauge = Gauge(
            "sentiment_queue_depth", "Texts waiting for a batch", registry=r
        )

    def _model_metrics(self, r: CollectorRegistry) -> None:
        self.model_info = Gauge(
            "sentiment_model_info", "The active model (value 1)", ["name", "version", "variant"],
            registry=r,
        )  # fmt: skip
        self.ready = Gauge("sentiment_ready", "1 when the service is ready", registry=r)
        self.model_swaps = Counter(
            "sentiment_model_swaps", "Model activations by outcome", ["outcome"], registry=r
        )

    def request_done(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(route=route, status=str(status)),
                self.latency.labels(route=route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_texts(self, route: str, n: int) -> None:
        key = ("texts", route)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.texts.labels(route=route)
        child.inc(n)

    # BatchObserver
    def batch_done(self, size: int, seconds: float, padding_ratio: float) -> None:
        self.batch_size.observe(size)
        self.inference_seconds.observe(seconds)
        self.padding_ratio.observe(padding_ratio)

    def queue_wait(self, seconds: float) -> None:
        self.queue_wait_seconds.observe(seconds)

    def queue_depth(self, depth: int) -> None:
        self.queue_depth_gauge.set(depth)

    def set_model(self, name: str, version: str, variant: str) -> None:
        self.model_info.clear()
        self.model_info.labels(name=name, version=version, variant=variant).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
