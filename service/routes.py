"""HTTP routes: translate requests to calls on the active model, and back. Nothing more."""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from service.errors import (
    BundleError,
    InvalidInput,
    NotFound,
    RequestTimeout,
    Unauthorized,
    UnsupportedMediaType,
)
from service.runtime import ModelManager, ModelRuntime
from service.schemas import (
    ActivateModelRequest,
    ErrorResponse,
    HealthResponse,
    ModelRef,
    ModelSummary,
    PredictRequest,
    PredictResponse,
    TextsRequest,
    TokenizeRequest,
    TokenizeResponse,
    TokenizeResult,
)
from service.settings import Settings
from service.tokenizer import Encoded, has_control_char

router = APIRouter()
# Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in a thread
# pool, and that hop cost a third of the event loop's time per request (py-spy, bench/).
# A request of up to this many characters is encoded on the loop wherever Python can
# encode it (2-3 ms of reviews): that path holds the GIL anyway, so a thread would only
# add hand-offs, and keep the vocab table's temporaries in its own malloc arena (+10 MB of
# peak RSS). Text that is not ASCII costs more per character (CJK about 0.15 µs; folding
# a new character ~8 µs, at most 32 per text): a request whose non-ASCII texts add up to
# more than the middle limit (about 5 ms of the worst such text; a 64-review request holds
# about 11,000 such characters) is encoded in a thread. Texts that need the Rust tokenizer
# (5x slower per character; the few whose characters Python cannot fold:
# service/tokenizer.py) release the GIL: beyond the smallest limit they go to a thread.
_INLINE_ENCODE_CHARS = 131_072
_INLINE_NON_ASCII_CHARS = 32_768
_INLINE_RUST_CHARS = 16_384
# JSON can spell lone UTF-16 surrogates ("\ud800"); they are not text (not encodable as UTF-8)
# and the tokenizer cannot take them. Only a text that is not ASCII can hold one
# (``str.isascii`` answers at once), so most texts skip this scan.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _error(description: str, retry_after: bool = False) -> dict:
    """An OpenAPI response entry for the one error body every failure uses."""
    entry: dict = {"model": ErrorResponse, "description": description}
    if retry_after:
        entry["headers"] = {
            "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
        }
    return entry


# What each route can answer besides 200 (413 for any route: see app.py).
_UNSUPPORTED = {415: _error("Content-Type is not application/json")}
_INVALID = {422: _error("Invalid input: the message names the field and index")}
_UNAVAILABLE = {
    503: _error("Not ready, overloaded or shutting down (see Retry-After)", retry_after=True)
}
_TEXT_ERRORS = {**_UNSUPPORTED, **_INVALID, **_UNAVAILABLE}
_PREDICT_ERRORS = {
    **_TEXT_ERRORS,
    500: _error("Inference failed for the batch holding this request; retry is safe"),
    504: _error("Not scored within SENTIMENT_REQUEST_TIMEOUT_S (overloaded)"),
}
_ADMIN_ERRORS = {
    401: _error("Missing or invalid bearer token"),
    404: _error("Admin API disabled (SENTIMENT_ADMIN_TOKEN unset)"),
    **_UNSUPPORTED,
    422: _error("Invalid request, or the bundle was refused (the current model keeps serving)"),
}


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_manager(request: Request) -> ModelManager:
    return request.app.state.models


async def get_runtime(request: Request) -> AsyncIterator[ModelRuntime]:
    """The active model, held for the whole request (a swap waits for it to finish)."""
    runtime = request.app.state.models.current()
    runtime.acquire()
    try:
        yield runtime
    finally:
        runtime.release()


def json_media_type(content_type: str) -> bool:
    """application/json or application/*+json: the types FastAPI parses as JSON."""
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def require_json(request: Request) -> None:
    # Read from the request, not declared as a Header parameter: cheaper per request.
    if not json_media_type(content_type := request.headers.get("content-type", "")):
        media = content_type.split(";")[0].strip().lower()
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {media or 'nothing'!r}"
        )


SettingsDep = Annotated[Settings, Depends(get_settings)]
ManagerDep = Annotated[ModelManager, Depends(get_manager)]
RuntimeDep = Annotated[ModelRuntime, Depends(get_runtime)]
JSON_ONLY = [Depends(require_json)]


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
        if problem := _text_problem(text, settings.max_text_chars):
            where = body.field_name(i)
            raise InvalidInput(f"{where} {problem}", field=where)
    return texts


def _text_problem(text: str, max_chars: int) -> str | None:
    """What is wrong with one text, or None (runs on every text: cheapest checks first)."""
    if not text or text.isspace():
        return "is empty or only whitespace"
    if len(text) > max_chars:
        return f"has {len(text)} characters; the limit is {max_chars}"
    if has_control_char(text):
        return "contains control characters (NUL or other C0 codes besides tab and newline)"
    if not text.isascii() and _SURROGATE.search(text):
        return "contains a lone UTF-16 surrogate (\\ud800-\\udfff): not valid Unicode text"
    return None


async def encode(runtime: ModelRuntime, texts: list[str], with_tokens: bool) -> list[Encoded]:
    encoder = runtime.bundle.encoder
    one = len(texts) == 1
    if not one and (
        sum(map(len, texts)) > _INLINE_ENCODE_CHARS
        or sum(len(t) for t in texts if not t.isascii()) > _INLINE_NON_ASCII_CHARS
    ):
        return await run_in_threadpool(encoder.encode, texts, with_tokens)
    out, rust = encoder.encode_python_path(texts, with_tokens)
    if rust:
        if one or sum(len(texts[i]) for i in rust) <= _INLINE_RUST_CHARS:
            encoder.encode_rust_path(texts, rust, out, with_tokens)
        else:
            await run_in_threadpool(encoder.encode_rust_path, texts, rust, out, with_tokens)
    return out  # type: ignore[return-value]


def model_ref(runtime: ModelRuntime) -> ModelRef:
    return ModelRef(name=runtime.bundle.name, version=runtime.bundle.version)


@router.post(
    "/predict",
    response_model=PredictResponse,
    dependencies=JSON_ONLY,
    responses=_PREDICT_ERRORS,
    tags=["inference"],
)
async def predict(body: PredictRequest, request: Request) -> Response:
    """Sentiment of one text (`text`) or several (`texts`), in input order."""
    # The hot path. It takes no injected dependencies and answers with bytes it renders
    # itself: FastAPI's dependency solving and response-model re-validation cost more
    # event-loop time per request than tokenizing a review (py-spy, docs/performance.md).
    texts = validated_texts(body, request.app.state.settings)
    request.scope["state"]["texts"] = len(texts)
    content = await predict_json(request.app.state, texts)
    return Response(content, media_type="application/json")


async def predict_json(state: State, texts: list[str]) -> bytes:
    """Score validated texts with the active model; the JSON answer (route and fast path)."""
    runtime: ModelRuntime = state.models.current()
    runtime.acquire()  # the same version's tokenizer and model, even during a swap
    try:
        encoded, scores = await score_texts(runtime, texts, state.settings.request_timeout_s)
        content = render_predictions(runtime, encoded, scores)
    finally:
        runtime.release()
    state.metrics.count_texts("/predict", len(texts))
    return content


async def score_texts(
    runtime: ModelRuntime, texts: list[str], timeout_s: float
) -> tuple[list[Encoded], list[float]]:
    # Room in the queue first: when full, the 503 comes before any tokenizing work.
    admission = runtime.batcher.admit(len(texts))
    try:
        async with asyncio.timeout(timeout_s):
            encoded = await encode(runtime, texts, with_tokens=False)
            scores = await runtime.batcher.submit([e.ids for e in encoded], admission)
    except TimeoutError:
        raise RequestTimeout(
            f"not scored within {timeout_s:g} s (SENTIMENT_REQUEST_TIMEOUT_S); "
            "the server is overloaded, retry later"
        ) from None
    finally:
        runtime.batcher.withdraw(admission)  # no-op once submitted
    return encoded, scores


def render_predictions(runtime: ModelRuntime, encoded: list[Encoded], scores: list[float]) -> bytes:
    """``PredictResponse`` as JSON, built from plain values (tested equal to the model's dump)."""
    labels, threshold = runtime.bundle.labels, runtime.bundle.threshold
    return to_json(
        {
            "model": {"name": runtime.bundle.name, "version": runtime.bundle.version},
            "predictions": [
                {
                    "label": labels[1] if score >= threshold else labels[0],
                    "score": score,
                    "probabilities": {"negative": 1.0 - score, "positive": score},
                    "tokens": len(e.ids),
                    "truncated": e.truncated,
                    "unknown_tokens": e.unknown_tokens,
                }
                for e, score in zip(encoded, scores, strict=True)
            ],
        }
    )


@router.post(
    "/tokenize",
    response_model=TokenizeResponse,
    dependencies=JSON_ONLY,
    responses=_TEXT_ERRORS,
    tags=["inference"],
)
async def tokenize(
    body: TokenizeRequest, request: Request, runtime: RuntimeDep, settings: SettingsDep
) -> TokenizeResponse:
    """Exactly the token ids the model sees for each text (before padding), with the tokens."""
    texts = validated_texts(body, settings)
    request.scope["state"]["texts"] = len(texts)
    encoded = await encode(runtime, texts, with_tokens=True)
    request.app.state.metrics.texts.labels(route="/tokenize").inc(len(texts))
    return TokenizeResponse(
        model=model_ref(runtime),
        results=[
            TokenizeResult(
                ids=e.ids,
                tokens=e.tokens,
                length=len(e.ids),
                truncated=e.truncated,
                unknown_tokens=e.unknown_tokens,
            )
            for e in encoded
        ],
    )


@router.get("/health/live", response_model=HealthResponse, tags=["health"])
async def live() -> HealthResponse:
    """The process is up and serving HTTP."""
    return HealthResponse(status="ok")


@router.get(
    "/health/ready",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse}},
    tags=["health"],
)
async def ready(manager: ManagerDep):
    """200 once the bundle is loaded, verified and self-checked; 503 with the reason otherwise."""
    if manager.shutting_down:
        body = HealthResponse(status="not_ready", reason="shutting down")
        return JSONResponse(body.model_dump(), status_code=503)
    if manager.active is None:
        body = HealthResponse(status="not_ready", reason=manager.not_ready_reason)
        return JSONResponse(body.model_dump(), status_code=503)
    return HealthResponse(status="ok", model=model_ref(manager.active))


@router.get("/model", response_model=ModelSummary, responses=_UNAVAILABLE, tags=["model"])
async def model_info(runtime: RuntimeDep) -> ModelSummary:
    """The active model's manifest summary: name, version, metrics, limits, file hashes."""
    return ModelSummary(**runtime.bundle.summary())


@router.get(
    "/metrics",
    tags=["health"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    m = request.app.state.metrics
    return Response(m.render(), media_type=m.content_type)


async def require_admin(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if not token:
        raise NotFound("admin API disabled (set SENTIMENT_ADMIN_TOKEN to enable it)")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized()


@router.post(
    "/admin/model",
    response_model=ModelSummary,
    dependencies=[Depends(require_admin), *JSON_ONLY],
    responses=_ADMIN_ERRORS,
    tags=["admin"],
)
async def activate_model(
    body: ActivateModelRequest, manager: ManagerDep, settings: SettingsDep
) -> ModelSummary:
    """Verify and activate another bundle version without a restart (atomic swap)."""
    path = _bundle_path(body, settings)
    try:
        runtime = await manager.activate(path)
    except BundleError as exc:
        raise InvalidInput(f"bundle refused, the current model keeps serving: {exc}") from None
    return ModelSummary(**runtime.bundle.summary())


def _bundle_path(body: ActivateModelRequest, settings: Settings) -> Path:
    if (body.version is None) == (body.path is None):
        raise InvalidInput("give exactly one of 'version' or 'path'")
    field, value = ("path", body.path) if body.path is not None else ("version", body.version)
    if "\x00" in value or _SURROGATE.search(value):
        raise InvalidInput(f"'{field}' holds a NUL or a lone surrogate: not a path", field=field)
    if body.path is not None:
        return Path(body.path)
    root = (settings.models_root / settings.model_name).resolve()
    try:
        path = (root / body.version).resolve()
    except (OSError, RuntimeError) as exc:  # name too long, symlink loop, ...
        raise InvalidInput(f"'version' is not a usable path ({exc.__class__.__name__})") from None
    if path.parent != root:
        raise InvalidInput(
            "'version' must name a directory directly under the models root", field="version"
        )
    return path
