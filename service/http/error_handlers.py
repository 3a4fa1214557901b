"""Errors into HTTP: one body shape for every failure, one mapping from each cause."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from service.errors import ServiceError
from service.http import v2_wire
from service.http.json_body import DUPLICATE_KEY

# A 4 MB body of wrong values can hold a million errors; the answer names the first few.
MAX_ERROR_DETAILS = 10
_MAX_FIELD_CHARS = 200


def service_error_response(request: Request, exc: ServiceError) -> JSONResponse:
    if exc.status_code in (503, 504):  # overloaded, not ready, shutting down, timeout
        model = request.scope.get("state", {}).get("model", "")
        request.app.state.metrics.rejected_request(exc.code, model)
    details = [{"field": exc.field, "message": exc.message}] if exc.field else []
    return error_response(request, exc.status_code, exc.code, exc.message, details, exc.headers)


def error_response(
    request: Request, status: int, code: str, message: str, details=None, headers=None
) -> JSONResponse:
    path = request.scope.get("path", "")
    if path == v2_wire.PREFIX or path.startswith(v2_wire.PREFIX + "/"):
        # The Open Inference Protocol's shape, and its 400 for bad input (our 422).
        body = v2_wire.error_body(_printable(message))
        return JSONResponse(body, status_code=400 if status == 422 else status, headers=headers)
    details = [
        {"field": _printable(d["field"]), "message": _printable(d["message"])}
        for d in details or []
    ]
    request.scope.setdefault("state", {})["error"] = code  # for the access line
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


def _body_schema(request: Request) -> type | None:
    """The pydantic model of the matched route's JSON body, if it has one."""
    field = getattr(request.scope.get("route"), "body_field", None)
    return getattr(getattr(field, "field_info", None), "annotation", None)


def _detail(err: dict, schema: type | None) -> dict:
    """One validation error as {field, message}, in words that say what to send."""
    kind, loc = err.get("type"), tuple(err.get("loc", ()))
    example = getattr(schema, "EXAMPLE", '{"text": "..."}')
    if kind == "json_invalid":
        error = err.get("ctx", {}).get("error", err["msg"])
        if error.endswith(DUPLICATE_KEY):  # JSON's grammar allows it; we refuse it
            return {"field": None, "message": f"body: {error}"}
        return {"field": None, "message": f"body is not valid JSON: {error}"}
    if kind == "missing" and loc in (("body",), ()):
        return {"field": "body", "message": f"the body is empty: send a JSON object like {example}"}
    if kind in ("model_type", "model_attributes_type", "dict_type") and len(loc) <= 1:
        got = _json_kind(err.get("input"))
        return {
            "field": "body",
            "message": f"the body must be a JSON object like {example}, not {got}",
        }
    if kind == "extra_forbidden":
        expected = getattr(schema, "FIELDS_HELP", "")
        message = f"unknown field {loc[-1]!r}" + (f"; {expected}" if expected else "")
        return {"field": _field_name(loc), "message": message}
    return {"field": _field_name(loc), "message": err["msg"].removeprefix("Value error, ")}


def _summary(detail: dict) -> str:
    field, message = detail["field"], detail["message"]
    if not field or field == "body" or repr(field) in message:  # the message names it
        return message
    return f"{field}: {message}"


def _not_allowed(request: Request, exc: StarletteHTTPException) -> str:
    """405's words: the method refused and the ones the path takes (its Allow header)."""
    allowed = (exc.headers or {}).get("Allow", "")
    message = f"method {request.method} not allowed on {request.url.path}"
    return f"{message}; use {allowed}" if allowed else message


def _not_found(request: Request) -> str:
    """404's words: the path asked for, and the route meant when only a slash differs."""
    path = request.url.path
    message = f"no route {request.method} {path}"
    paths = {getattr(r, "path", None) for r in request.app.router.routes}
    for route in getattr(request.app.state, "routes", ()):  # (FastAPI includes lazily)
        paths.add(route)
    if path != "/" and path.rstrip("/") in paths:
        message += f"; did you mean {path.rstrip('/')}?"
    return message


def _json_kind(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "that")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        return service_error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        schema = _body_schema(request)
        details = [_detail(err, schema) for err in errors[:MAX_ERROR_DETAILS]]
        summary = "; ".join(map(_summary, details))
        if len(errors) > MAX_ERROR_DETAILS:
            summary += f"; and {len(errors) - MAX_ERROR_DETAILS} more errors"
        return error_response(request, 422, "invalid_input", summary or "invalid request", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400 and isinstance(exc.__cause__, ServiceError):
            # FastAPI wraps whatever reading the body raised (BodyTimeout) as this 400.
            return service_error_response(request, exc.__cause__)
        if exc.status_code == 400 and (message := _body_parse_error(exc.__cause__)):
            # Invalid UTF-8, nesting beyond the parser's depth, 5000-digit integers: the
            # same answer as any other body that is not JSON.
            details = [{"field": None, "message": message}]
            return error_response(request, 422, "invalid_input", message, details)
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        if exc.status_code == 404:
            message = _not_found(request)
        elif exc.status_code == 405:
            message = _not_allowed(request, exc)
        else:
            message = str(exc.detail)
        return error_response(request, exc.status_code, code, message, headers=exc.headers)

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
