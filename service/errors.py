"""The service's errors: each has an HTTP status, a stable code and a clear message.

Raised by every layer; ``http.error_handlers`` turns them into the one error body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentiment_core.manifest import BundleError

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = ["BundleError"]  # (re-exported: the model layer raises it)


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


class BodyTimeout(ServiceError):
    """The request body stopped arriving before its end (Content-Length not reached)."""

    status_code = 408
    code = "request_timeout"

    def __init__(self, message: str):
        super().__init__(message, headers={"Connection": "close"})  # the rest is not read


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


def settings_error(exc: ValidationError) -> str:
    """The first problem of invalid settings, naming its variable (``SENTIMENT_X: ...``)."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    return f"SENTIMENT_{field.upper()}: {message}" if field else message  # (it names them)
