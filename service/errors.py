"""One error base class, and the one way an error becomes an HTTP response."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse


class ServiceError(Exception):
    """An error with an HTTP status, a stable machine-readable code and a clear message."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers or {}


class InvalidInput(ServiceError):
    status_code = 422
    code = "invalid_input"


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class Overloaded(ServiceError):
    status_code = 503
    code = "overloaded"

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})
        self.retry_after_s = retry_after_s


class ShuttingDown(ServiceError):
    status_code = 503
    code = "shutting_down"

    def __init__(self, message: str = "the server is shutting down; retry on another instance"):
        super().__init__(message, headers={"Retry-After": "1"})


class NotReady(ServiceError):
    status_code = 503
    code = "not_ready"

    def __init__(self, message: str):
        super().__init__(message, headers={"Retry-After": "5"})


class RequestTimeout(ServiceError):
    status_code = 504
    code = "timeout"


class InferenceFailed(ServiceError):
    status_code = 500
    code = "inference_failed"


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str = "missing or invalid bearer token"):
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class BundleError(Exception):
    """The model bundle is missing, tampered with, or fails its self-check (not HTTP)."""


# -- the one error body -------------------------------------------------------------------
def service_error_response(request: Request, exc: ServiceError) -> JSONResponse:
    if exc.status_code in (503, 504):  # overloaded, not ready, shutting down, timeout
        request.app.state.metrics.rejected.labels(reason=exc.code).inc()
    details = [{"field": exc.field, "message": exc.message}] if exc.field else []
    return error_response(request, exc.status_code, exc.code, exc.message, details, exc.headers)


def error_response(
    request: Request, status: int, code: str, message: str, details=None, headers=None
) -> JSONResponse:
    details = [
        {"field": _printable(d["field"]), "message": _printable(d["message"])}
        for d in details or []
    ]
    body = {
        "error": {"code": code, "message": _printable(message), "details": details},
        "request_id": request.scope.get("state", {}).get("request_id"),
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _printable(text: str | None) -> str | None:
    """Messages may quote client input: lone surrogates must not break the UTF-8 answer."""
    if text is None:
        return None
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
