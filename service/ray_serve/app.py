"""The Ray Serve deployment: one deployment serving every model, each replica running the
service's own app (``create_app``), built inside the replica.

Settings reach a replica as ``SENTIMENT_*`` environment variables (the application's
``runtime_env``), exactly as ``sentiment-serve`` reads them; the code and the models
root must be on every node (the same image or venv; the same models path). A replica
whose models fail to load or to self-check fails its start, so Serve keeps the replicas
it has instead of routing to one that would answer "not ready".

One deployment for all models, not one per model: Serve routes HTTP by path, and a
request names its model in the body, so per-model deployments need an ingress
deployment that reads the body and forwards it through a handle, a second Ray hop per
request (bench/ray.py measures it; README "Scaling out").
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from ray import serve
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.app import create_app
from service.settings import Settings

DEPLOYMENT = "SentimentService"
REPLICA_HEADER = "x-replica"


@serve.deployment(name=DEPLOYMENT)
@serve.ingress()
class SentimentService:
    """A replica: the service's app, with its own models, batchers and metrics."""

    def __init__(self, replica_header: bool = False) -> None:
        self.replica_header = replica_header
        self.service: FastAPI | None = None

    def __serve_build_asgi_app__(self) -> ASGIApp:
        # Called by Serve in the replica after __init__; its lifespan runs next.
        self.service = create_app(Settings())
        _fail_start_unless_ready(self.service)
        if self.replica_header:
            self.service.add_middleware(ReplicaHeader, identity=_replica_identity())
        return self.service

    def check_health(self) -> None:
        """Serve's periodic health check: a replica whose models stopped serving is
        replaced (a shutdown in progress is not a failure)."""
        registry = self.service.state.models if self.service is not None else None
        if registry is not None and not registry.shutting_down and not registry.ready:
            raise RuntimeError(f"not ready: {registry.not_ready_reason()}")


def _fail_start_unless_ready(app: FastAPI) -> None:
    """Wrap the app's lifespan: after loading, raise unless every model is ready."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI):
        async with inner(application) as state:
            registry = application.state.models
            if not registry.ready:
                raise RuntimeError(f"models not ready: {registry.not_ready_reason()}")
            yield state

    app.router.lifespan_context = lifespan


def _replica_identity() -> bytes:
    """``node-ip/pid/replica-id``: which process answered (opt-in: tests, debugging)."""
    import ray

    context = serve.get_replica_context()
    node_ip = ray.util.get_node_ip_address()
    return f"{node_ip}/{os.getpid()}/{context.replica_id.unique_id}".encode()


class ReplicaHeader:
    """Adds ``X-Replica: node-ip/pid/replica-id`` to every response."""

    def __init__(self, app: ASGIApp, identity: bytes):
        self.app = app
        self.identity = identity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_identity(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (REPLICA_HEADER.encode(), self.identity)]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_identity)


def build(args: dict[str, Any]) -> serve.Application:
    """Application builder for ``serve run`` config files (``import_path:
    service.ray_serve.app:build``); ``args``: ``replica_header`` (bool)."""
    return SentimentService.bind(replica_header=bool(args.get("replica_header", False)))
