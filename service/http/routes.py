"""HTTP routes: translate requests to calls on the pipeline and the models, and back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from sentiment_core.bundle import existing_version, refuse_smoke_run
from sentiment_core.manifest import read_manifest
from service import pipeline
from service.errors import (
    BundleError,
    InvalidInput,
    UnsupportedMediaType,
)
from service.explain import by_sentence
from service.http.admin_auth import ADMIN_TOKEN, AuthFirstRoute
from service.http.json_body import StrictJsonRoute
from service.http.schemas import (
    ActivateModelRequest,
    ErrorResponse,
    HealthResponse,
    ModelRef,
    ModelsResponse,
    ModelSummary,
    PredictRequest,
    PredictResponse,
    TokenizeRequest,
    TokenizeResponse,
    TokenizeResult,
    json_media_type,
)
from service.model.registry import ModelRegistry
from service.model.runtime import ModelRuntime
from service.settings import Settings

router = APIRouter(route_class=StrictJsonRoute)  # gzip bodies; a key given twice is a 422
# Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in a thread
# pool, a hop that costs more than the work here.


# The OpenAPI header entry of every 503 (here, in /v2 and on /health/ready).
RETRY_AFTER_HEADERS = {
    "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
}


def _error(description: str, retry_after: bool = False) -> dict:
    """An OpenAPI response entry for the one error body every failure uses."""
    entry: dict = {"model": ErrorResponse, "description": description}
    if retry_after:
        entry["headers"] = RETRY_AFTER_HEADERS
    return entry


# What each route can answer besides 200 (413 for any route: see app.py).
_UNSUPPORTED = {415: _error("Content-Type is not application/json")}
_INVALID = {422: _error("Invalid input: the message names the field and index")}
_UNAVAILABLE = {
    503: _error("Not ready, overloaded or shutting down (see Retry-After)", retry_after=True)
}
_UNKNOWN_MODEL = {404: _error("No served model has that name (the message lists them)")}
_TEXT_ERRORS = {**_UNSUPPORTED, **_UNKNOWN_MODEL, **_INVALID, **_UNAVAILABLE}
_TOKENIZE_ERRORS = {
    **_TEXT_ERRORS,
    504: _error("Not tokenized within SENTIMENT_REQUEST_TIMEOUT_S (overloaded)"),
}
_PREDICT_ERRORS = {
    **_TEXT_ERRORS,
    500: _error("Inference failed for the batch holding this request; retry is safe"),
    504: _error("Not scored within SENTIMENT_REQUEST_TIMEOUT_S (overloaded)"),
}
_ADMIN_ERRORS = {
    401: _error("Missing or invalid bearer token"),
    404: _error("Admin API disabled (SENTIMENT_ADMIN_TOKEN unset), or no such model"),
    **_UNSUPPORTED,
    422: _error("Invalid request, or the bundle was refused (the current model keeps serving)"),
}


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.models


async def require_json(request: Request) -> None:
    # Read from the request, not declared as a Header parameter: cheaper per request.
    if not json_media_type(content_type := request.headers.get("content-type", "")):
        media = content_type.split(";")[0].strip().lower()
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {media or 'nothing'!r}"
        )


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
JSON_ONLY = [Depends(require_json)]


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
    """Sentiment of one text (`text`) or several (`texts`), in input order.

    `model` picks a served model (`GET /models`); without it, the default model answers.
    With `"sentences": true` each prediction also lists its sentences (offsets in Unicode
    code points into the text) with their labels, and `mixed` says whether confident
    sentences disagree.
    """
    # The hot path: no injected dependencies, and bytes rendered by the pipeline (FastAPI's
    # dependency solving and response re-validation cost more than encoding a review).
    texts = pipeline.validated_texts(body, request.app.state.settings)
    request.scope["state"]["texts"] = len(texts)
    scope_state = request.scope["state"]
    if body.sentences:  # (the fast path hands these requests to this route)
        content = await by_sentence.predict_json(request.app.state, texts, body.model, scope_state)
    else:
        content = await pipeline.predict_json(request.app.state, texts, body.model, scope_state)
    return Response(content, media_type="application/json")


@router.post(
    "/tokenize",
    response_model=TokenizeResponse,
    dependencies=JSON_ONLY,
    responses=_TOKENIZE_ERRORS,
    tags=["inference"],
)
async def tokenize(
    body: TokenizeRequest, request: Request, registry: RegistryDep, settings: SettingsDep
) -> TokenizeResponse:
    """Exactly the token ids the model sees for each text (before padding), with the tokens."""
    texts = pipeline.validated_texts(body, settings)
    request.scope["state"]["texts"] = len(texts)
    runtime = registry.current(body.model)
    pipeline.note_model(request.scope["state"], runtime)
    runtime.acquire()  # one version's encoder, even during a swap
    try:
        encoded = await pipeline.tokenize(runtime, texts, settings.request_timeout_s)
    finally:
        runtime.release()
    request.app.state.metrics.count_texts("/tokenize", len(texts), runtime.bundle.name)
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


@router.get(
    "/health/live", response_model=HealthResponse, response_model_exclude_none=True, tags=["health"]
)
async def live() -> HealthResponse:
    """The process is up and serving HTTP."""
    return HealthResponse(status="ok")


@router.get(
    "/health/ready",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "headers": RETRY_AFTER_HEADERS}},
    tags=["health"],
)
async def ready(registry: RegistryDep, request: Request):
    """200 once every served model is loaded, verified and self-checked; else 503 and why
    (also from SIGTERM on: "shutting down", while requests are still served a while)."""
    # Retry-After as on every 503: the same values as ShuttingDown's and NotReady's.
    if request.app.state.lifecycle.stopping:
        body = HealthResponse(status="not_ready", reason="shutting down")
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "1"})
    serving = [m.active for m in registry.managers.values() if m.active is not None]
    models = [model_ref(runtime) for runtime in serving] or None
    default = registry.managers.get(registry.default_name) if registry.default_name else None
    default_ref = model_ref(default.active) if default and default.active else None
    if registry.shutting_down or not registry.ready:  # with the models that do serve
        body = HealthResponse(
            status="not_ready", reason=registry.not_ready_reason(), model=default_ref, models=models
        )
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "5"})
    return HealthResponse(status="ok", model=default_ref, models=models)


@router.get("/model", response_model=ModelSummary, responses=_UNAVAILABLE, tags=["model"])
async def model_info(registry: RegistryDep) -> ModelSummary:
    """The default model's manifest summary: name, version, labels, metrics, file hashes."""
    return ModelSummary(**registry.current().bundle.summary())


@router.get("/models", response_model=ModelsResponse, responses=_UNAVAILABLE, tags=["model"])
async def models(registry: RegistryDep) -> ModelsResponse:
    """Every served model: name, version, labels, decision rule and test metrics."""
    registry.manager()  # 503 while shutting down or with no model at all
    summaries = [
        ModelSummary(**m.active.bundle.summary())
        if m.active is not None
        else ModelSummary.not_ready(name, m.not_ready_reason)
        for name, m in registry.managers.items()
    ]
    return ModelsResponse(default=registry.default_name, models=summaries)


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


async def activate_model(
    body: ActivateModelRequest, registry: RegistryDep, settings: SettingsDep
) -> ModelSummary:
    """Verify and activate another version of a model without a restart (atomic swap)."""
    given = Path(body.path) if body.path is not None and "\x00" not in body.path else None
    manager = registry.manager_to_activate(body.model, given)
    try:
        path = _bundle_path(body, settings.models_root / manager.name)
        _refuse_a_smoke_run(path, body.force)
        runtime = await manager.activate(path)
    except BundleError as exc:
        keeps = "the current model keeps serving" if manager.active else "nothing is served yet"
        raise InvalidInput(f"bundle refused, {keeps}: {exc}") from None
    finally:  # whatever failed, a first model that did not load leaves no slot behind
        registry.swap_failed(manager.name)
    return ModelSummary(**runtime.bundle.summary())


router.add_api_route(
    "/admin/model",
    activate_model,
    methods=["POST"],
    response_model=ModelSummary,
    dependencies=[Depends(ADMIN_TOKEN), *JSON_ONLY],
    responses=_ADMIN_ERRORS,
    tags=["admin"],
    route_class_override=AuthFirstRoute,
)


def _refuse_a_smoke_run(path: Path, force: bool) -> None:
    """As sentiment-promote does: a bundle trained with --limit only when forced."""
    try:
        manifest = read_manifest(path)
    except OSError as exc:  # a name too long, a folder we may not read
        raise BundleError(f"{str(path)[:200]}: {exc.strerror or exc}") from None
    refuse_smoke_run(path, manifest, force, 'swap to it with "force": true')


def _bundle_path(body: ActivateModelRequest, versions_dir: Path) -> Path:
    if (body.version is None) == (body.path is None):
        raise InvalidInput("give exactly one of 'version' or 'path'", field="body")
    field, value = ("path", body.path) if body.path is not None else ("version", body.version)
    if "\x00" in value or pipeline.has_surrogate(value):
        raise InvalidInput(f"'{field}' holds a NUL or a lone surrogate: not a path", field=field)
    if body.path is not None:
        if not Path(body.path).is_absolute():  # else it would depend on the server's cwd
            raise InvalidInput("'path' must be an absolute bundle directory", field="path")
        return Path(body.path)
    root = versions_dir.resolve()
    try:
        path = (root / body.version).resolve()
    except (OSError, RuntimeError) as exc:  # name too long, symlink loop, ...
        raise InvalidInput(f"'version' is not a usable path ({exc.__class__.__name__})") from None
    if path.parent != root:
        raise InvalidInput(
            f"'version' must name a directory directly under the models root's {root.name}/",
            field="version",
        )
    return existing_version(root.parent, root.name, path.name)
