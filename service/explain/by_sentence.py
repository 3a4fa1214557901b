"""``/predict`` with ``"sentences": true``: each document's sentences, scored beside it.

The documents keep their own answer (the model's reading of the whole text); each
sentence gets its label and probabilities, with offsets into its document. Documents and
sentences go through the model's batcher in one submission, so the queue's admission
limit, its 503s and the request timeout apply to all of them.

``mixed`` is true when confident sentences disagree: at least one sentence is
``positive`` and one ``negative``, each with probability >= ``MIXED_CONFIDENCE`` (for a
model without both labels: two confident sentences with different labels).
"""

from __future__ import annotations

from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from service import pipeline
from service.errors import InvalidInput
from service.explain.sentences import sentence_spans
from service.inference.batch import Row
from service.model.runtime import ModelRuntime
from service.settings import Settings

MIXED_CONFIDENCE = 0.8


async def predict_json(
    state: State, texts: list[str], model: str | None = None, scope_state: dict | None = None
) -> bytes:
    """The ``PredictResponse`` of validated texts, each prediction with its sentences."""
    runtime: ModelRuntime = state.models.current(model)
    pipeline.note_model(scope_state, runtime)
    runtime.acquire()  # one version's encoder and model for documents and sentences alike
    try:
        predictions = await _predictions(runtime, state.settings, texts)
    finally:
        runtime.release()
    state.metrics.count_texts("/predict", len(texts), runtime.bundle.name)
    bundle = runtime.bundle
    return to_json(
        {"model": {"name": bundle.name, "version": bundle.version}, "predictions": predictions}
    )


async def _predictions(runtime: ModelRuntime, settings: Settings, texts: list[str]) -> list[dict]:
    # Off the event loop: a request may hold 256 texts of 20,000 characters each.
    spans = await run_in_threadpool(lambda: [sentence_spans(t) for t in texts])
    _check_count(spans, len(texts), settings)
    # A text that is one sentence is not scored twice: its sentence is the text itself.
    extra = [t[s:e] for t, doc in zip(texts, spans, strict=True) if len(doc) > 1 for s, e in doc]
    encoded, rows = await pipeline.score(runtime, texts + extra, settings.request_timeout_s)
    n = len(texts)
    predictions = pipeline.prediction_dicts(runtime, encoded[:n], rows[:n])
    sentence_rows = iter(rows[n:])
    for text, doc, prediction, row in zip(texts, spans, predictions, rows[:n], strict=True):
        doc_rows = [row] if len(doc) == 1 else [next(sentence_rows) for _ in doc]
        prediction["sentences"] = _sentences(runtime, text, doc, doc_rows)
        prediction["mixed"] = is_mixed(prediction["sentences"], runtime.bundle.manifest.labels)
    return predictions


def _check_count(spans: list[list[tuple[int, int]]], texts: int, settings: Settings) -> None:
    """Documents and sentences must fit the queue at once, or they could never be scored."""
    count = sum(len(doc) for doc in spans)
    limit = min(settings.max_sentences_per_request, settings.queue_size - texts)
    if count > limit:
        raise InvalidInput(
            f"{count} sentences in one request; the limit is {limit} "
            "(SENTIMENT_MAX_SENTENCES_PER_REQUEST, and the queue's room beside the texts): "
            "send fewer or shorter texts per request",
            field="sentences",
        )


def _sentences(
    runtime: ModelRuntime, text: str, spans: list[tuple[int, int]], rows: list[Row]
) -> list[dict]:
    """Each sentence's text, offsets, label (by the model's decision rule) and probabilities."""
    if not spans:
        return []
    manifest = runtime.bundle.manifest
    labels = manifest.labels
    chosen = manifest.predicted(rows).tolist()
    probabilities = manifest.probabilities(rows).tolist()
    return [
        {
            "text": text[start:end],
            "start": start,
            "end": end,
            "label": labels[best],
            "probabilities": dict(zip(labels, probs, strict=True)),
        }
        for (start, end), best, probs in zip(spans, chosen, probabilities, strict=True)
    ]


def is_mixed(sentences: list[dict], labels: list[str]) -> bool:
    """Whether confident sentences disagree (see the module's docstring)."""
    confident = {
        s["label"] for s in sentences if s["probabilities"][s["label"]] >= MIXED_CONFIDENCE
    }
    if "positive" in labels and "negative" in labels:
        return {"positive", "negative"} <= confident
    return len(confident) > 1
