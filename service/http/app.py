"""The application factory: ``create_app(settings)``; nothing is built at import time."""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager
from importlib import metadata

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service.http.auth import ApiKeyMiddleware, ApiKeys, is_open
from service.http.body import BodyLimitMiddleware
from service.http.error_handlers import install_error_handlers
from service.http.fastpath import PredictFastPath
from service.http.lifecycle import Lifecycle, ShutdownGate
from service.http.middleware import HeadAsGet, RequestContextMiddleware
from service.http.routes import router
from service.http.routes_explain import router as explain_router
from service.http.schemas import ErrorResponse
from service.http.ui import install_docs, install_page
from service.http.v2 import router as v2_router
from service.logs import configure_logging
from service.metrics import Metrics
from service.model.registry import ModelRegistry
from service.settings import Settings

_NO_OTEL = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FastAPI:
    settings = settings or Settings()
    if configure_logs:
        configure_logging(settings.log_level, settings.log_json)
    metrics = Metrics()
    registry = ModelRegistry(settings, metrics)

    keys = ApiKeys([k.get_secret_value() for k in settings.api_keys], settings.api_keys_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        logging.getLogger("service.auth").info(keys.describe())
        await registry.load_all()
        # Everything alive now (framework, model, tokenizer) lives as long as the process:
        # keep it out of the cyclic collector's full passes, which otherwise rescan it.
        gc.freeze()
        yield
        # uvicorn has stopped accepting and finished in-flight requests by now (SIGTERM).
        await registry.shutdown()

    app = FastAPI(
        title="Sentiment LSTM service",
        version=package_version(),
        summary="LSTM sentiment classifiers served with onnxruntime and dynamic batching.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from the package's own files (ui.py)
        redoc_url=None,
        # FastAPI's native OpenTelemetry layer looks up the global OTel providers on every
        # request, on the event loop. The service reports through /metrics, request ids
        # and logs; OTel is opt-in.
        telemetry=None if settings.otel_telemetry else _NO_OTEL,
        # Any route (the body limit applies before routing); per-route errors: routes.py.
        responses={
            408: {"model": ErrorResponse, "description": "The body stopped arriving"},
            413: {"model": ErrorResponse, "description": "Body too large"},
        },
        # /predict/ is a 404 that names /predict, not a redirect a JSON client will not follow.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.models = registry
    # Moved on by sentiment-serve's GracefulServer on SIGTERM; stays "serving" elsewhere.
    app.state.lifecycle = Lifecycle(metrics)
    _install_routes(app, settings)
    install_error_handlers(app)
    _install_middleware(app, settings, keys)
    app.state.routes = _route_paths(app)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, routes=app.state.routes)
    return app


def _install_routes(app: FastAPI, settings: Settings) -> None:
    app.include_router(router)
    app.include_router(v2_router)
    app.include_router(explain_router)
    install_docs(app)
    if settings.ui:
        install_page(app)


def _install_middleware(app: FastAPI, settings: Settings, keys: ApiKeys) -> None:
    # Outermost last: request context → CORS → shutdown gate → API keys → body limit →
    # HEAD as GET → fast path → routes.
    if settings.fast_path:  # innermost: every check above still applies
        app.add_middleware(PredictFastPath)
    app.add_middleware(HeadAsGet)
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s
    )
    if keys.enabled:
        app.add_middleware(ApiKeyMiddleware, keys=keys)
    # While the server closes (SIGTERM), 503 + Retry-After for everything: inside the
    # request context (request id, logs, metrics) and CORS, before a key is even looked at.
    app.add_middleware(ShutdownGate, lifecycle=app.state.lifecycle)
    if settings.cors_origins:  # off unless configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            # A page on another origin reads only what is exposed: a 503's Retry-After, and
            # the id to quote when it reports a problem.
            expose_headers=["Retry-After", "X-Request-ID"],
        )
    refine_openapi(app, api_keys=keys.enabled)


def refine_openapi(app: FastAPI, api_keys: bool) -> None:
    """What FastAPI's generated document gets wrong here: /v2 answers bad input with 400
    (never FastAPI's 422 for its path parameters), and with API keys on, the operations
    that need one say so (so /docs can send it) and list its 401."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if path.startswith("/v2"):
                    operation.get("responses", {}).pop("422", None)
                if api_keys and not is_open(path):
                    _needs_a_key(path, operation)
        if api_keys:
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["ApiKey"] = {
                "type": "http",
                "scheme": "bearer",
                "description": "an API key (SENTIMENT_API_KEYS / SENTIMENT_API_KEYS_FILE)",
            }
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _needs_a_key(path: str, operation: dict) -> None:
    body = "V2Error" if path.startswith("/v2") else "ErrorResponse"
    operation.setdefault("security", [{"ApiKey": []}])
    operation.setdefault("responses", {}).setdefault(
        "401",
        {
            "description": "No API key, or not one of SENTIMENT_API_KEYS(_FILE)",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        },
    )


def package_version() -> str:
    try:
        return metadata.version("sentiment-lstm-service")
    except metadata.PackageNotFoundError:  # (run from a source tree that is not installed)
        return "0+unknown"


def _route_paths(app: FastAPI) -> set[str]:
    # The routers' own lists too: requests answered by PredictFastPath never reach routing.
    routers = (router, v2_router, explain_router)
    return {getattr(r, "path", "") for r in [*app.routes, *(r for x in routers for r in x.routes)]}
