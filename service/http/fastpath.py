"""POST /predict's common case, answered without FastAPI's per-request machinery.

A speed-up (``SENTIMENT_FAST_PATH``): one event loop does all the HTTP work of this
process, so its time per request bounds throughput, and FastAPI's routing, dependency
solving and response re-validation are a large share of it for short texts. This ASGI
middleware serves a well-formed JSON /predict request directly: the same pydantic model,
the same limits and the same pipeline as the route, the same response.

Anything else goes to the FastAPI app unchanged, with the body already read replayed:
another path or method, a Content-Type that is not JSON (or several), a chunked body, a
client that leaves mid-body, every body that fails validation (so each 4xx answer is the
route's own, a key given twice included), a compressed body, and requests asking for
sentences (not the hot path). Tests check that
both give identical answers.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ServiceError
from service.http.error_handlers import service_error_response
from service.http.json_body import duplicate_key, may_repeat_a_key
from service.http.schemas import PredictRequest, json_media_type
from service.pipeline import predict_json, validated_texts

_HEADERS = [(b"content-type", b"application/json")]


class PredictFastPath:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_json_predict(scope):
            return await self.app(scope, receive, send)
        messages, body = await _read_body(receive)
        if body is None:  # the client left mid-body: let the route answer as it does
            return await self.app(scope, _replay(messages, receive), send)
        try:
            request = PredictRequest.model_validate_json(body)
            texts = validated_texts(request, scope["app"].state.settings)
        except (ValidationError, ServiceError):
            return await self.app(scope, _replay(messages, receive), send)
        if request.sentences or _repeats_a_key(body):  # not the hot path: the route answers
            return await self.app(scope, _replay(messages, receive), send)
        scope["state"]["texts"] = len(texts)
        try:
            content = await predict_json(scope["app"].state, texts, request.model, scope["state"])
        except ServiceError as exc:
            response = service_error_response(Request(scope), exc)
            return await response(scope, receive, send)
        headers = [*_HEADERS, (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})


# A flat object (string, list and boolean values) that forbids other keys: a key given
# twice can only be one of these.
_KEYS = tuple(f'"{name}"'.encode() for name in PredictRequest.model_fields)


def _repeats_a_key(body: bytes) -> bool:
    return may_repeat_a_key(body, _KEYS) and duplicate_key(body) is not None


def _is_json_predict(scope: Scope) -> bool:
    """POST /predict with one JSON Content-Type and a body framed by Content-Length.

    Anything else takes the route: compressed bodies (the route inflates them), chunked
    bodies (where the body-size limit counts and answers 413), several Content-Type
    headers (the route reads the first).
    """
    if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/predict":
        return False
    content_types = []
    length = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_types.append(value)
        elif name == b"content-length":
            length = value
        elif name in (b"transfer-encoding", b"content-encoding"):
            return False
    if length is None or not length.isdigit() or len(content_types) != 1:
        return False
    return json_media_type(content_types[0].decode("latin-1"))


async def _read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The messages received and the whole body, or None if the client disconnected."""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] == "http.disconnect":
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands the app the messages read already, then the real channel."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
