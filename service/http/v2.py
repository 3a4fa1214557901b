"""The Open Inference Protocol's REST routes (KServe/Triton "v2"), for every served model.

Unmodified KServe and Triton clients (``tritonclient.http``) talk to the service through
these. Inference goes through the same pipeline and batcher as ``POST /predict`` and gives
the same numbers. Tensors on the wire: ``v2_wire``. Errors are ``{"error": "<message>"}``
(``error_handlers`` picks that shape for every path under /v2): 400 bad input, 404 unknown
model or version, 413 body too large, 503 not ready or overloaded (with Retry-After).

The infer route reads the raw body itself: tritonclient sends no Content-Type, and a
binary request is JSON followed by raw bytes, which no JSON body parser takes.
"""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from service import pipeline
from service.errors import InvalidInput, NotFound, NotReady, ShuttingDown
from service.http import v2_wire as wire
from service.http.error_handlers import error_response
from service.http.json_body import decoded
from service.http.routes import RETRY_AFTER_HEADERS
from service.model.runtime import ModelRuntime

router = APIRouter(prefix=wire.PREFIX, tags=["open inference protocol (v2)"])
EXTENSIONS = ["binary_tensor_data", "classification"]


class V2Error(BaseModel):
    error: str


def _error(description: str, retry_after: bool = False) -> dict:
    entry: dict = {"model": V2Error, "description": description}
    if retry_after:
        entry["headers"] = RETRY_AFTER_HEADERS
    return entry


_UNAVAILABLE = {503: _error("Not ready, overloaded or shutting down", retry_after=True)}
_MODEL_ERRORS = {404: _error("No served model (or version) by that name"), **_UNAVAILABLE}
# Route-level entries replace the app's 408 and 413 (whose body is the /predict error shape).
_ANY = {
    408: _error("The body stopped arriving (SENTIMENT_BODY_TIMEOUT_S)"),
    413: _error("Body too large (SENTIMENT_MAX_BODY_BYTES)"),
}
_INFER_ERRORS = {
    **_ANY,
    400: _error("Bad input: the message names the problem"),
    415: _error("Content-Encoding other than gzip or deflate"),
    **_MODEL_ERRORS,
    500: _error("Inference failed for the batch holding this request; retry is safe"),
    504: _error("Not scored within SENTIMENT_REQUEST_TIMEOUT_S"),
}


def _inlined(schema: dict) -> dict:
    """``schema`` with its ``$defs`` references replaced by the definitions: an OpenAPI
    document has no ``#/$defs`` (ReDoc fails on one), and these models are not recursive."""
    defs = schema.pop("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    return resolve(schema)


_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inlined(wire.InferRequest.model_json_schema())}
        },
    }
}
_INFER_200 = {
    "description": "JSON, or with binary outputs the JSON header then the tensors' bytes",
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


@router.get("", responses=_ANY)
async def server_metadata(request: Request) -> dict:
    """Server name, version and the protocol extensions it speaks."""
    return {
        "name": "sentiment-lstm-service",
        "version": request.app.version,
        "extensions": EXTENSIONS,
    }


@router.get("/health/live", responses=_ANY)
async def server_live() -> dict:
    return {"live": True}


@router.get("/health/ready", responses={**_ANY, **_UNAVAILABLE})
async def server_ready(request: Request) -> dict:
    """200 once every served model is loaded and self-checked."""
    registry = request.app.state.models
    if registry.shutting_down or not registry.ready:
        return _probe_answer(request, NotReady(f"not ready: {registry.not_ready_reason()}"))
    return {"ready": True}


def _probe_answer(request: Request, exc: NotReady | ShuttingDown) -> Response:
    """A readiness probe's 503 is an answer, not refused work: not counted in
    sentiment_rejected_total (as /health/ready's is not)."""
    return error_response(request, 503, exc.code, exc.message, headers=exc.headers)


@router.get("/models/{name}", responses={**_ANY, **_MODEL_ERRORS})
@router.get("/models/{name}/versions/{version}", responses={**_ANY, **_MODEL_ERRORS})
async def model_metadata(request: Request, name: str, version: str | None = None):
    """The model's input and outputs (and its labels, in the probabilities' order)."""
    try:
        runtime = _runtime(request, name, version)
    except (NotReady, ShuttingDown) as exc:
        return _probe_answer(request, exc)
    bundle = runtime.bundle
    settings = request.app.state.settings
    return {
        "name": bundle.name,
        "versions": [bundle.version],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": wire.INPUT, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": wire.PROBABILITIES, "datatype": "FP32", "shape": [-1, len(bundle.labels)]},
            {"name": wire.LABEL, "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": {
            "labels": bundle.labels,
            "max_texts_per_request": settings.max_texts_per_request,
            "max_text_chars": settings.max_text_chars,
        },
    }


@router.get("/models/{name}/ready", responses={**_ANY, **_MODEL_ERRORS})
@router.get("/models/{name}/versions/{version}/ready", responses={**_ANY, **_MODEL_ERRORS})
async def model_ready(request: Request, name: str, version: str | None = None):
    try:
        _runtime(request, name, version)
    except (NotReady, ShuttingDown) as exc:
        return _probe_answer(request, exc)
    return {"name": name, "ready": True}


@router.post(
    "/models/{name}/infer", responses={200: _INFER_200, **_INFER_ERRORS}, openapi_extra=_INFER_BODY
)
@router.post(
    "/models/{name}/versions/{version}/infer",
    responses={200: _INFER_200, **_INFER_ERRORS},
    openapi_extra=_INFER_BODY,
)
async def infer(request: Request, name: str, version: str | None = None) -> Response:
    """Class probabilities and labels for a BYTES tensor of texts (JSON or binary)."""
    state = request.app.state
    body = await request.body()
    runtime = _runtime(request, name, version)
    pipeline.note_model(request.scope["state"], runtime)
    runtime.acquire()  # one version's encoder and model for the whole request
    try:
        encoding = request.headers.get("content-encoding")
        body = decoded(body, encoding, state.settings.max_body_bytes)
        parsed, blob = wire.parse(body, request.headers.get(wire.HEADER_LENGTH))
        texts = _validated(parsed, blob, state.settings)
        outputs = wire.requested_outputs(parsed, len(runtime.bundle.labels))
        request.scope["state"]["texts"] = len(texts)
        _, rows = await pipeline.score(runtime, texts, state.settings.request_timeout_s)
    finally:
        runtime.release()
    state.metrics.count_texts(request.scope["route"].path, len(texts), runtime.bundle.name)
    return _answer(runtime, parsed, outputs, np.asarray(rows, dtype=np.float64))


def _runtime(request: Request, name: str, version: str | None) -> ModelRuntime:
    runtime = request.app.state.models.current(name)
    if version is not None and version != runtime.bundle.version:
        raise NotFound(
            f"model {name!r} has no version {version[:100]!r}; it serves {runtime.bundle.version!r}"
        )
    return runtime


def _validated(parsed: wire.InferRequest, blob: bytes, settings) -> list[str]:
    """The texts, with /predict's limits (count, length, no blank or control characters);
    and an ``id`` the answer can echo (JSON can spell a lone surrogate; UTF-8 cannot)."""
    if parsed.id is not None and pipeline.has_surrogate(parsed.id):
        raise InvalidInput("inference request: 'id' contains a lone UTF-16 surrogate")
    texts = wire.input_texts(parsed, blob, settings.max_texts_per_request)
    for i, text in enumerate(texts):
        if problem := pipeline.text_problem(text, settings.max_text_chars):
            raise InvalidInput(f"input {wire.INPUT!r}: element {i} {problem}")
    return texts


def _answer(
    runtime: ModelRuntime, parsed: wire.InferRequest, outputs: list[wire.Output], rows: np.ndarray
) -> Response:
    manifest = runtime.bundle.manifest
    labels = manifest.labels
    predicted = [labels[i] for i in manifest.predicted(rows)]
    head: dict = {"model_name": runtime.bundle.name, "model_version": runtime.bundle.version}
    if parsed.id is not None:
        head["id"] = parsed.id
    content, header_length = wire.render(
        head, outputs, manifest.probabilities(rows), labels, predicted
    )
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(header_length)},
    )
