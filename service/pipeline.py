"""The predict pipeline: validate → encode → batch → score → render.

Both ``POST /predict`` (``http.routes``) and its fast path (``http.fastpath``) call
``predict_json``; ``/tokenize`` calls ``tokenize``. A request holds one model runtime
from start to end, so it is always scored with one version's encoder and model.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Sequence

from pydantic_core import to_json
from starlette.datastructures import State

from sentiment_core.encoder import Encoded
from service.errors import InvalidInput, RequestTimeout
from service.http.schemas import TextsRequest
from service.inference.batch import Row
from service.model.runtime import ModelRuntime
from service.settings import Settings

# C0 control codes and DEL, except the whitespace ones (tab, newline, vertical tab, form
# feed, carriage return): text extracted from PDFs and terminals holds those.
REFUSED_CONTROL = "\x00-\x08\x0e-\x1f\x7f"
_REFUSED = re.compile(f"[{REFUSED_CONTROL}]")
# Deleting every other ASCII character from a text's ASCII bytes leaves the refused ones:
# cheaper than a regex search on every text.
_NOT_REFUSED = bytes(c for c in range(128) if not _REFUSED.match(chr(c)))
# JSON can spell lone UTF-16 surrogates ("\ud800"); they are not text and the tokenizer
# cannot take them. Only a non-ASCII text can hold one, so most texts skip this scan.
_SURROGATE = re.compile("[\ud800-\udfff]")


def validated_texts(body: TextsRequest, settings: Settings) -> list[str]:
    """Limits pydantic cannot know: counts, sizes, blank and control characters."""
    texts = body.as_list()
    if not texts:
        raise InvalidInput("'texts' must hold at least one string", field="texts")
    if len(texts) > settings.max_texts_per_request:
        raise InvalidInput(
            f"{len(texts)} texts in one request; the limit is {settings.max_texts_per_request}",
            field="texts",
        )
    for i, text in enumerate(texts):
        if problem := text_problem(text, settings.max_text_chars):
            where = body.field_name(i)
            raise InvalidInput(f"{where} {problem}", field=where)
    return texts


def text_problem(text: str, max_chars: int) -> str | None:
    """What is wrong with one text, or None (runs on every text: cheapest checks first)."""
    if not text or text.isspace():
        return "is empty or only whitespace"
    if not text.isascii() and is_invisible(text):
        return "is only whitespace and invisible characters (zero-width space, BOM, ...)"
    if len(text) > max_chars:
        return f"has {len(text)} characters; the limit is {max_chars}"
    if has_refused_control(text):
        found = _REFUSED.search(text)
        assert found is not None
        return (
            f"contains control characters (U+{ord(found.group()):04X} at character "
            f"{found.start()}): NUL, ESC, DEL and the other C0 codes are refused; tab, "
            "newline, carriage return, vertical tab and form feed are accepted"
        )
    if not text.isascii() and _SURROGATE.search(text):
        return "contains a lone UTF-16 surrogate (\\ud800-\\udfff): not valid Unicode text"
    return None


def is_invisible(text: str) -> bool:
    """Whitespace and format characters (Unicode Cf: U+200B, U+FEFF, U+2060) only; stops
    at the first visible character, so a real text costs one or two lookups."""
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)


def has_refused_control(text: str) -> bool:
    """Whether ``text`` holds one of ``REFUSED_CONTROL`` (as ``_REFUSED.search`` answers)."""
    return bool(text.encode("ascii", "ignore").translate(None, _NOT_REFUSED))


def has_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def note_model(scope_state: dict | None, runtime: ModelRuntime) -> None:
    """The request's model and version in its scope state, for its access line."""
    if scope_state is not None:
        scope_state["model"], scope_state["version"] = runtime.bundle.name, runtime.bundle.version


async def predict_json(
    state: State, texts: list[str], model: str | None = None, scope_state: dict | None = None
) -> bytes:
    """Score validated texts with the named (or default) model; the JSON answer.

    ``scope_state`` (the request's) gets the model and version, for the access line."""
    runtime: ModelRuntime = state.models.current(model)
    note_model(scope_state, runtime)
    runtime.acquire()  # the same version's encoder and model, even during a swap
    try:
        encoded, rows = await score(runtime, texts, state.settings.request_timeout_s)
        content = render_predictions(runtime, encoded, rows)
    finally:
        runtime.release()
    state.metrics.count_texts("/predict", len(texts), runtime.bundle.name)
    return content


async def score(
    runtime: ModelRuntime, texts: list[str], timeout_s: float
) -> tuple[list[Encoded], list[Row]]:
    """Encode and score ``texts``: their encodings and the model's output rows."""
    # Room in the queue first: when full, the 503 comes before any encoding work.
    admission = runtime.batcher.admit(len(texts))
    try:
        async with asyncio.timeout(timeout_s):
            encoded = await runtime.bundle.encoder.encode_async(texts, with_tokens=False)
            rows = await runtime.batcher.submit([e.ids for e in encoded], admission)
    except TimeoutError:
        raise _timed_out(timeout_s) from None
    finally:
        runtime.batcher.withdraw(admission)  # no-op once submitted
    return encoded, rows


async def score_ids(
    runtime: ModelRuntime, sequences: list[Sequence[int]], timeout_s: float
) -> list[Row]:
    """The output rows of sequences encoded already (e.g. /explain's variants): the same
    queue, admission limits and timeout as ``score``."""
    try:
        async with asyncio.timeout(timeout_s):
            return await runtime.batcher.submit(sequences)
    except TimeoutError:
        raise _timed_out(timeout_s) from None


def _timed_out(timeout_s: float, done: str = "scored") -> RequestTimeout:
    return RequestTimeout(
        f"not {done} within {timeout_s:g} s (SENTIMENT_REQUEST_TIMEOUT_S); "
        "the server is overloaded, retry later"
    )


def render_predictions(runtime: ModelRuntime, encoded: list[Encoded], rows: list[Row]) -> bytes:
    """``PredictResponse`` as JSON, built from plain values (tested equal to the schema's)."""
    bundle = runtime.bundle
    predictions = prediction_dicts(runtime, encoded, rows)
    return to_json(
        {"model": {"name": bundle.name, "version": bundle.version}, "predictions": predictions}
    )


def prediction_dicts(runtime: ModelRuntime, encoded: list[Encoded], rows: list[Row]) -> list[dict]:
    """One ``Prediction`` (as a dict) per text."""
    manifest = runtime.bundle.manifest
    if manifest.output.kind == "sigmoid":
        return _binary(manifest.labels, manifest.decision.threshold, encoded, rows)
    return _categorical(manifest.labels, manifest.polar_indices(), encoded, rows)


def _binary(labels: list[str], threshold, encoded: list[Encoded], rows: list[Row]) -> list[dict]:
    """Sigmoid output: ``score`` is P(labels[1]), the label by the threshold."""
    negative, positive = labels
    return [
        {
            "label": positive if (p := row[0]) >= threshold else negative,
            "score": p,
            "probabilities": {negative: 1.0 - p, positive: p},
            "tokens": len(e.ids),
            "truncated": e.truncated,
            "unknown_tokens": e.unknown_tokens,
        }
        for e, row in zip(encoded, rows, strict=True)
    ]


def _categorical(
    labels: list[str], polar: tuple[int, int] | None, encoded: list[Encoded], rows: list[Row]
) -> list[dict]:
    """Softmax output: the label by argmax; ``score`` P(positive) - P(negative), or the
    predicted label's probability for labels without that pair (``Manifest.scores``)."""
    negative, positive = polar or (None, None)
    return [
        {
            "label": labels[best := max(range(len(row)), key=row.__getitem__)],
            "score": row[positive] - row[negative] if polar else row[best],
            "probabilities": dict(zip(labels, row, strict=True)),
            "tokens": len(e.ids),
            "truncated": e.truncated,
            "unknown_tokens": e.unknown_tokens,
        }
        for e, row in zip(encoded, rows, strict=True)
    ]


async def tokenize(runtime: ModelRuntime, texts: list[str], timeout_s: float) -> list[Encoded]:
    """Encode ``texts`` with their tokens under ``score``'s admission and timeout: the
    encoding is CPU work, and an overloaded server answers 503 before doing it."""
    admission = runtime.batcher.admit(len(texts))
    try:
        async with asyncio.timeout(timeout_s):
            return await runtime.bundle.encoder.encode_async(texts, with_tokens=True)
    except TimeoutError:
        raise _timed_out(timeout_s, "tokenized") from None
    finally:
        runtime.batcher.withdraw(admission)
