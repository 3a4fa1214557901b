"""``POST /explain``: the prediction for one text, and a weight for each of its tokens.

The text is encoded once with offsets (``tokens``); its leave-one-out variants
(``occlusion``) and the text itself go to the model's batcher in one submission, behind
the same admission limit, 503s and timeout as any /predict request. Cost grows with the
square of the length, so the tokens explained per request are bounded: a longer text is
refused with a 422 that names the limit (never cut silently).
"""

from __future__ import annotations

from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from service import pipeline
from service.errors import InvalidInput
from service.explain.occlusion import leave_one_out, weights
from service.explain.tokens import TokenSpans, encode_with_offsets
from service.model.runtime import ModelRuntime
from service.settings import Settings

METHOD = "leave-one-out"


async def explain_json(
    state: State, text: str, model: str | None = None, scope_state: dict | None = None
) -> bytes:
    """The ``ExplainResponse`` for one validated text, as JSON."""
    runtime: ModelRuntime = state.models.current(model)
    pipeline.note_model(scope_state, runtime)
    runtime.acquire()  # the same version's tokenizer and model for the text and its variants
    try:
        body = await _explain(runtime, state.settings, text)
    finally:
        runtime.release()
    state.metrics.count_texts("/explain", 1, runtime.bundle.name)
    return to_json(body)


def token_limit(settings: Settings, runtime: ModelRuntime) -> int:
    """Most tokens explained: the setting, within what the model reads whole and what the
    queue can hold at once (the text and one variant per token)."""
    return _limit_and_why(settings, runtime)[0]


def _limit_and_why(settings: Settings, runtime: ModelRuntime) -> tuple[int, str]:
    max_length = runtime.bundle.manifest.input.max_length
    limit, why = min(
        (settings.explain_max_tokens, "SENTIMENT_EXPLAIN_MAX_TOKENS"),
        (max_length, "the model's max length"),
        (settings.queue_size - 1, "SENTIMENT_QUEUE_SIZE - 1: the text and one variant per token"),
    )
    return max(1, limit), why


async def _explain(runtime: ModelRuntime, settings: Settings, text: str) -> dict:
    reference = runtime.bundle.encoder.reference
    spans: TokenSpans = await run_in_threadpool(encode_with_offsets, reference, text)
    limit, why = _limit_and_why(settings, runtime)
    if len(spans.ids) > limit:
        raise InvalidInput(
            f"text has {len(spans.ids)} tokens; /explain explains at most {limit} ({why}): "
            "shorten it, or explain it a few sentences at a time",
            field="text",
        )
    encoded = reference.finish(spans.ids.tolist(), [], with_tokens=False)  # [UNK] if none
    variants = leave_one_out(spans.ids) if len(spans.ids) else []
    rows = await pipeline.score_ids(runtime, [encoded.ids, *variants], settings.request_timeout_s)
    prediction = pipeline.prediction_dicts(runtime, [encoded], rows[:1])[0]
    manifest = runtime.bundle.manifest
    target, token_weights = weights(manifest, rows[0], rows[1:])
    tokens = [
        {"text": text[start:end], "start": start, "end": end, "token": token, "weight": weight}
        for (start, end), token, weight in zip(
            spans.offsets, spans.tokens, token_weights.tolist(), strict=True
        )
    ]
    return {
        "model": {"name": runtime.bundle.name, "version": runtime.bundle.version},
        "prediction": prediction,
        "target": manifest.labels[target],
        "method": METHOD,
        "tokens": tokens,
    }
