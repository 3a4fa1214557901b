"""The comparison servers: (a) Keras per request, (b) onnxruntime per request, (e) no inference.

Each is a small FastAPI app that accepts the service's request body and answers with the
service's response shape, run by ``python -m bench.baselines SYSTEM --port P`` in its own
process under uvicorn exactly as ``sentiment-serve`` runs the service (one process,
uvloop + httptools, no access log), so all HTTP systems are measured the same way.

- (a) ``seed``: what the tutorials lead to. A sync endpoint (FastAPI runs it in its thread
  pool) that encodes the texts, pads them to the longest in the request and calls
  ``model.predict(batch, verbose=0)`` on the trained Keras model.
- (b) ``ort``: the same endpoint with the bundle's onnxruntime session instead of Keras:
  one ``session.run`` per request, no batching across requests.
- (e) ``echo``: the HTTP ceiling. Same body validation (pydantic model and the service's
  own limits), a same-shaped response with fixed numbers, and no tokenizer or model.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from service.http.schemas import (
    ModelRef,
    Prediction,
    PredictRequest,
    PredictResponse,
)
from service.pipeline import validated_texts
from service.settings import Settings

BUNDLE_ENV = "BENCH_BUNDLE_DIR"
# (b)'s onnxruntime intra-op threads; 1 measured best with the thread pool (docs/performance.md).
ORT_THREADS_ENV = "BENCH_ORT_THREADS"
ORT_VARIANT_ENV = "BENCH_ORT_VARIANT"  # default: the service's default model variant
# A score with as many digits as a real one, so (e)'s response is as long as the service's.
_FIXED_SCORE = 0.7316283154487610
ECHO_LABELS = ("negative", "positive")

ScoreFn = Callable[[list[list[int]]], Any]  # the model's output rows (n, columns)


def _bundle_dir() -> Path:
    given = os.environ.get(BUNDLE_ENV)
    return Path(given) if given else Settings().resolved_model_dir()


def _response(
    model: ModelRef, labels: Sequence[str], predicted, scores, probabilities, encoded: list
) -> PredictResponse:
    """The service's answer shape: per text its label index, score and probabilities."""
    return PredictResponse(
        model=model,
        predictions=[
            Prediction(
                label=labels[i],
                score=float(score),
                probabilities=dict(zip(labels, map(float, p), strict=True)),
                tokens=len(e.ids),
                truncated=e.truncated,
                unknown_tokens=e.unknown_tokens,
            )
            for e, i, score, p in zip(encoded, predicted, scores, probabilities, strict=True)
        ],
    )


def _model_response(model: ModelRef, manifest, outputs, encoded: list) -> PredictResponse:
    """From the model's output rows, by the bundle's own decision rule and score."""
    return _response(
        model,
        manifest.labels,
        manifest.predicted(outputs),
        manifest.scores(outputs),
        manifest.probabilities(outputs),
        encoded,
    )


def _per_request_app(title: str, bundle, score: ScoreFn) -> FastAPI:
    """A sync endpoint: encode, score this request's texts in one call, answer."""
    app = FastAPI(title=title)
    settings = Settings()
    model = ModelRef(name=bundle.name, version=bundle.version)

    @app.post("/predict", response_model=PredictResponse)
    def predict(body: PredictRequest) -> PredictResponse:
        encoded = bundle.encoder.encode(validated_texts(body, settings))
        return _model_response(model, bundle.manifest, score([e.ids for e in encoded]), encoded)

    @app.get("/health/ready")
    def ready() -> dict:
        return {"status": "ok"}

    return app


def ort_app() -> FastAPI:
    """(b) onnxruntime per request, the bundle's own session (verified, self-checked).

    It runs the model file the service runs by default (``SENTIMENT_MODEL_VARIANT``'s
    default), so (b) versus (c) measures serving, not quantisation.
    """
    from sentiment_core.encoder import pad_batch
    from service.model.loader import Speedups, load_bundle

    threads = int(os.environ.get(ORT_THREADS_ENV, "1"))
    variant = os.environ.get(ORT_VARIANT_ENV) or Settings().model_variant
    plain = Speedups(grouped_runs=False)  # one session, as a hand-written endpoint has
    bundle = load_bundle(_bundle_dir(), variant=variant, intra_op_threads=threads, speedups=plain)
    session, name = bundle.scorer.session, bundle.scorer.input_name

    def score(sequences: list[list[int]]):
        # The straightforward way: the request's texts padded together, one run. Not
        # ``Bundle.outputs``, whose packing is the service's own optimisation.
        return session.run(None, {name: pad_batch(sequences)})[0]

    return _per_request_app(f"ORT per request ({variant})", bundle, score)


def seed_app() -> FastAPI:
    """(a) Keras ``model.predict`` per request: TensorFlow is imported here and only here."""
    import numpy as np

    from sentiment_core.encoder import pad_batch
    from service.model.loader import load_bundle
    from training.model import load_trained_model

    bundle_dir = _bundle_dir()
    bundle = load_bundle(bundle_dir)  # for its encoder and manifest; ORT is not used
    model = load_trained_model(bundle_dir)

    def score(sequences: list[list[int]]):
        return np.asarray(model.predict(pad_batch(sequences), verbose=0), dtype=np.float32)

    score([[2, 3, 4]])  # the first call traces the predict function; not part of a request
    return _per_request_app("Keras per request", bundle, score)


def echo_app() -> FastAPI:
    """(e) the HTTP ceiling: validate like the service, answer the same shape, infer nothing."""
    app = FastAPI(title="HTTP ceiling")
    settings = Settings()
    model = ModelRef(name="sentiment-lstm", version="http-ceiling")

    class _Fake:
        __slots__ = ("ids", "truncated", "unknown_tokens")

        def __init__(self, text: str):
            self.ids = range(len(text) // 5 + 1)  # about a review's token count
            self.truncated = False
            self.unknown_tokens = 0

    @app.post("/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> PredictResponse:
        fakes = [_Fake(t) for t in validated_texts(body, settings)]
        n = len(fakes)
        probabilities = [(1.0 - _FIXED_SCORE, _FIXED_SCORE)] * n
        return _response(model, ECHO_LABELS, [1] * n, [_FIXED_SCORE] * n, probabilities, fakes)

    @app.get("/health/ready")
    async def ready() -> dict:
        return {"status": "ok"}

    return app


FACTORIES: dict[str, Callable[[], FastAPI]] = {
    "seed": seed_app,
    "ort": ort_app,
    "echo": echo_app,
}


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Serve one benchmark baseline.")
    parser.add_argument("system", choices=sorted(FACTORIES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = FACTORIES[args.system]()
    # The same uvicorn options as service/cli.py.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
