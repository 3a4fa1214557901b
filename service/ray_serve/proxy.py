"""Middleware for Ray Serve's HTTP proxy: no 500 for a replica that died mid-request.

When the replica holding a request dies (its process killed, its node lost), Serve's
proxy sends nothing and its server answers a bare 500. Scoring is idempotent, so the
honest answer is "unavailable, retry": 503 + ``Retry-After`` with the service's error
body. Serve's own 503s ("deployment unavailable") get a ``Retry-After`` too, and the
duplicate ``X-Request-ID`` (the proxy's and the app's, the same id) is sent once.

Serve loads it in the proxy from ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=
service.ray_serve.proxy:middlewares`` (``sentiment-serve --ray`` sets it for the Serve
controller, whose proxies inherit it; with ``serve run`` set it on the head node).
Only starlette is imported here: the proxy has it without the service's dependencies.
"""

from __future__ import annotations

import json
import logging

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("service.ray_serve.proxy")

RETRY_AFTER_S = 1
CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
CALLBACK = "service.ray_serve.proxy:middlewares"


class UnansweredAs503:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def checked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": _fixed(message["status"], message["headers"])}
            await send(message)

        await self.app(scope, receive, checked_send)
        if not started:
            log.warning("no answer from the replica (lost?): 503 + Retry-After")
            await _send_503(scope, send)


def _fixed(status: int, headers) -> list:
    out, seen = [], set()
    for name, value in headers:
        key = (name.lower(), value)
        if name.lower() == b"x-request-id" and key in seen:
            continue
        seen.add(key)
        out.append((name, value))
    if status == 503 and not any(name.lower() == b"retry-after" for name, _ in out):
        out.append((b"retry-after", str(RETRY_AFTER_S).encode()))
    return out


async def _send_503(scope: Scope, send: Send) -> None:
    request_id = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode()
    body = json.dumps(
        {
            "error": {
                "code": "unavailable",
                "message": "the replica serving this request stopped before answering; retry",
                "details": [],
            },
            "request_id": request_id or None,
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(RETRY_AFTER_S).encode()),
    ]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def middlewares() -> list[Middleware]:
    """The proxy callback: Serve wraps its proxy app with these."""
    return [Middleware(UnansweredAs503)]
