"""The application factory: ``create_app(settings)``; nothing is built at import time."""

from __future__ import annotations

import gc
import logging
import random
import re
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import (
    PayloadTooLarge,
    ServiceError,
    error_response,
    service_error_response,
)
from service.fastpath import PredictFastPath
from service.logs import configure_logging
from service.metrics import Metrics
from service.routes import router
from service.runtime import ModelManager
from service.schemas import ErrorResponse
from service.settings import Settings

log = logging.getLogger("service.access")
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# A 4 MB body of wrong values can hold a million errors; the answer names the first few.
MAX_ERROR_DETAILS = 10
_MAX_FIELD_CHARS = 200
_NO_OTEL = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    settings = settings or Settings()
    if configure_logs:
        configure_logging(settings.log_level, settings.log_json)
    metrics = Metrics()
    manager = ModelManager(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await manager.load_initial()
        # Everything alive now (framework, model, tokenizer) lives as long as the process:
        # keep it out of the cyclic collector's full passes, which otherwise rescan it.
        gc.freeze()
        yield
        # uvicorn has stopped accepting and finished in-flight requests by now (SIGTERM).
        await manager.shutdown()

    app = FastAPI(
        title="Sentiment LSTM service",
        version="1.0",
        summary="IMDB-trained LSTM sentiment classifier served with onnxruntime and dynamic batching.",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry layer looks up the global OTel providers on every
        # request (4% of the event loop's time on one-sentence requests, py-spy). The
        # service reports through /metrics, request ids and JSON logs; OTel is opt-in.
        telemetry=None if settings.otel_telemetry else _NO_OTEL,
        # Any route (the body limit applies before routing); per-route errors: routes.py.
        responses={413: {"model": ErrorResponse, "description": "Body too large"}},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.models = manager
    app.include_router(router)
    _install_error_handlers(app)
    if settings.fast_path:  # innermost: CORS, body limit and request context still apply
        app.add_middleware(PredictFastPath)
    if settings.cors_origins:  # off unless configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, routes=_route_paths(app))
    return app


def _route_paths(app: FastAPI) -> set[str]:
    # The router's own list too: requests answered by PredictFastPath never reach routing.
    return {getattr(r, "path", "") for r in [*app.routes, *router.routes]}


# -- errors: one mapping, one body shape --------------------------------------------------
def _body_parse_error(cause: BaseException | None) -> str | None:
    """What FastAPI's bare 400 "error parsing the body" was about, for the clients."""
    if isinstance(cause, UnicodeDecodeError):
        return f"body is not valid JSON: not UTF-8 text (byte {cause.start}: {cause.reason})"
    if isinstance(cause, RecursionError):
        return "body is not valid JSON here: arrays or objects nested too deeply"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return "body is not valid JSON here: a number with too many digits"
    if isinstance(cause, ValueError):
        return f"body is not valid JSON ({type(cause).__name__})"
    return None


def _field_name(loc: tuple) -> str | None:
    parts = [p for p in loc if p != "body"]
    if not parts:
        return None
    name = ""
    for p in parts:
        name += f"[{p}]" if isinstance(p, int) else (f".{p}" if name else str(p))
    if len(name) > _MAX_FIELD_CHARS:  # an unknown key is the client's own, of any length
        name = name[:_MAX_FIELD_CHARS] + "…"
    return name


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        return service_error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        details = []
        for err in errors[:MAX_ERROR_DETAILS]:
            loc = tuple(err.get("loc", ()))
            if err.get("type") == "json_invalid":
                details.append(
                    {
                        "field": None,
                        "message": f"body is not valid JSON: {err.get('ctx', {}).get('error', err['msg'])}",
                    }
                )
                continue
            message = err["msg"].removeprefix("Value error, ")
            details.append({"field": _field_name(loc), "message": message})
        summary = "; ".join(
            f"{d['field']}: {d['message']}" if d["field"] else d["message"] for d in details
        )
        if len(errors) > MAX_ERROR_DETAILS:
            summary += f"; and {len(errors) - MAX_ERROR_DETAILS} more errors"
        return error_response(request, 422, "invalid_input", summary or "invalid request", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400 and (message := _body_parse_error(exc.__cause__)):
            # Invalid UTF-8, nesting beyond the parser's depth, 5000-digit integers: the
            # same answer as any other body that is not JSON.
            details = [{"field": None, "message": message}]
            return error_response(request, 422, "invalid_input", message, details)
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return error_response(request, exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        # Logged with its traceback; the client never sees one.
        logging.getLogger("service").exception("unhandled error")
        # This handler runs in Starlette's outermost ServerErrorMiddleware, outside
        # RequestContextMiddleware, so the request id header must be added here.
        request_id = request.scope.get("state", {}).get("request_id")
        return error_response(
            request,
            500,
            "internal_error",
            "internal error; see server logs",
            headers={"X-Request-ID": request_id} if request_id else None,
        )


# -- middleware (pure ASGI: no body buffering, works with streaming) ----------------------
class BodyLimitMiddleware:
    """413 before reading a body whose Content-Length is too big; also caps chunked bodies."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        try:
            size = int(declared) if declared is not None else None
        except ValueError:
            size = None
        if size is not None and size > self.max_bytes:
            return await self._reject(scope, receive, send)
        if size is not None and b"transfer-encoding" not in headers:
            # The server frames this body by Content-Length, so it cannot exceed the size
            # just checked: no need to count it. (With Transfer-Encoding too, h11 frames
            # it as chunked: such bodies are counted.)
            return await self.app(scope, receive, send)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise StarletteHTTPException(413, self._message())
            return message

        await self.app(scope, limited_receive, send)

    def _message(self) -> str:
        return f"request body exceeds {self.max_bytes} bytes (SENTIMENT_MAX_BODY_BYTES)"

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = PayloadTooLarge(self._message())
        request = Request(scope, receive)
        response = error_response(request, exc.status_code, exc.code, exc.message)
        response.headers["Connection"] = "close"  # we did not read the body
        await response(scope, receive, send)


class RequestContextMiddleware:
    """Request id (accepted or generated, echoed), one access-log line, request metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: set[str]):
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        incoming = incoming.decode("latin-1")
        # A random 128-bit id, in uuid4().hex's format, without a system call per request
        # (an id to correlate logs, not a secret).
        request_id = (
            incoming if _REQUEST_ID_OK.match(incoming) else f"{random.getrandbits(128):032x}"
        )
        scope.setdefault("state", {})["request_id"] = request_id
        id_bytes = request_id.encode()
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", id_bytes)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = self._route_label(scope)
            self.metrics.request_done(route, status, seconds)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": route,
                        "status": status,
                        "ms": round(seconds * 1000, 2),
                        "texts": scope["state"].get("texts"),
                    },
                )

    def _route_label(self, scope: Scope) -> str:
        # The router records the matched route in the scope; with FastAPI >= 0.16x an
        # included APIRouter's routes no longer appear in ``app.routes`` (they sit behind
        # one lazy entry), so a path set built at startup alone would label them "other".
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str) and path:
            return path
        return scope["path"] if scope["path"] in self.routes else "other"
