"""POST /predict's common case, answered without FastAPI's per-request machinery.

Why: one event loop does all the HTTP work of this process, so its time per request
bounds throughput. For a one-sentence request, FastAPI's routing, dependency solving,
exception-wrapping layers and response-model re-validation took about half of that time
(py-spy under ``make bench``; docs/performance.md). This ASGI middleware serves a
well-formed JSON /predict request directly: it validates the body with the same pydantic
model and the same limits as the route, scores it with the same functions, and renders
the same response.

Anything else goes to the FastAPI app unchanged, with the body it already read replayed:
another path or method, a Content-Type that is not JSON, a chunked body, and every body that fails
validation, so each 4xx answer is exactly the one the route gives. Errors after
validation (overloaded, not ready, timeout, a failed batch) use the app's one error
mapping (``service_error_response``). The route in routes.py stays the documented
contract and serves the delegated requests; tests check both give identical answers.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ServiceError, service_error_response
from service.routes import json_media_type, render_predictions, score_texts, validated_texts
from service.schemas import PredictRequest

_HEADERS = [(b"content-type", b"application/json")]


class PredictFastPath:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_json_predict(scope):
            return await self.app(scope, receive, send)
        body = await _read_body(receive)
        if body is None:  # the client left before sending its body
            return
        try:
            texts = validated_texts(
                PredictRequest.model_validate_json(body), scope["app"].state.settings
            )
        except (ValidationError, ServiceError):
            return await self.app(scope, _replay(body, receive), send)
        scope["state"]["texts"] = len(texts)
        try:
            content = await _predict(scope, texts)
        except ServiceError as exc:
            response = service_error_response(Request(scope), exc)
            return await response(scope, receive, send)
        headers = [*_HEADERS, (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})


async def _predict(scope: Scope, texts: list[str]) -> bytes:
    state = scope["app"].state
    runtime = state.models.current()
    runtime.acquire()  # the same version's tokenizer and model, even during a swap
    try:
        encoded, scores = await score_texts(runtime, texts, state.settings.request_timeout_s)
        content = render_predictions(runtime, encoded, scores)
    finally:
        runtime.release()
    state.metrics.count_texts("/predict", len(texts))
    return content


def _is_json_predict(scope: Scope) -> bool:
    """POST /predict with a JSON body of declared length (chunked bodies take the route,
    where the body-size limit's 413 is handled)."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/predict":
        return False
    headers = dict(scope["headers"])
    if b"content-length" not in headers:
        return False
    return json_media_type(headers.get(b"content-type", b"").decode("latin-1"))


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body (the body-size limit wraps ``receive``), or None on disconnect."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body read already, then the real channel."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
