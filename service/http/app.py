"""The application factory: ``create_app(settings)``; nothing is built at import time."""

from __future__ import annotations

import gc
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service.http.error_handlers import install_error_handlers
from service.http.fastpath import PredictFastPath
from service.http.middleware import BodyLimitMiddleware, RequestContextMiddleware
from service.http.routes import router
from service.http.routes_explain import router as explain_router
from service.http.schemas import ErrorResponse
from service.http.ui import install_docs, install_page
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

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await registry.load_all()
        # Everything alive now (framework, model, tokenizer) lives as long as the process:
        # keep it out of the cyclic collector's full passes, which otherwise rescan it.
        gc.freeze()
        yield
        # uvicorn has stopped accepting and finished in-flight requests by now (SIGTERM).
        await registry.shutdown()

    app = FastAPI(
        title="Sentiment LSTM service",
        version="1.0",
        summary="LSTM sentiment classifiers served with onnxruntime and dynamic batching.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from the package's own files (ui.py)
        redoc_url=None,
        # FastAPI's native OpenTelemetry layer looks up the global OTel providers on every
        # request, on the event loop. The service reports through /metrics, request ids
        # and logs; OTel is opt-in.
        telemetry=None if settings.otel_telemetry else _NO_OTEL,
        # Any route (the body limit applies before routing); per-route errors: routes.py.
        responses={413: {"model": ErrorResponse, "description": "Body too large"}},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.models = registry
    app.include_router(router)
    app.include_router(explain_router)
    install_docs(app)
    if settings.ui:
        install_page(app)
    install_error_handlers(app)
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
    return {getattr(r, "path", "") for r in [*app.routes, *router.routes, *explain_router.routes]}
