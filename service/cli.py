"""``sentiment-serve``: run the API with uvicorn (flags override SENTIMENT_* env settings),
or deploy it to a Ray cluster with ``--ray ADDRESS``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError

from sentiment_core.bundle import promoted_bundle
from sentiment_core.manifest import BundleError
from service.errors import settings_error
from service.settings import Settings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sentiment-serve", description=__doc__)
    p.add_argument("--host", help="bind address (env SENTIMENT_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (env SENTIMENT_PORT, default 8000)")
    p.add_argument(
        "--model-dir",
        type=Path,
        help="serve this one bundle directory (env SENTIMENT_MODEL_DIR; default: the "
        "promoted version of every model under models/, see SENTIMENT_MODELS)",
    )
    p.add_argument(
        "--workers", type=int, help="worker processes (env SENTIMENT_WORKERS, default 1)"
    )
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="deploy to the Ray cluster at ADDRESS (host:port of its head) with Ray Serve "
        "instead of serving here; --host/--port are then the cluster's HTTP proxy "
        "(needs the 'ray' extra; see service/ray_serve/)",
    )
    p.add_argument(
        "--ray-config",
        type=Path,
        metavar="YAML",
        help="with --ray: replicas, autoscaling and limits from this file "
        "(default: service/ray_serve/serve.yaml's values)",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if v is not None and not k.startswith("ray")}
    settings = checked_settings(flags)
    if args.ray:
        from service.ray_serve.deploy import deploy_from_cli

        deploy_from_cli(args.ray, settings, flags, args.ray_config)
        return
    server = uvicorn_options(settings)
    if settings.workers == 1:
        # Default: one process. The batcher merges concurrent requests and onnxruntime
        # runs in its own threads; the event loop (one core) bounds HTTP throughput.
        from service.http.app import create_app

        run_server(create_app(settings), settings.lame_duck_s, **server)
        return
    # Several processes, each with its own model and batcher: about N× the HTTP
    # throughput for N× the memory (docs/performance.md). Workers read SENTIMENT_* from
    # the environment, so the flags travel there. uvicorn's supervisor stops them on
    # SIGTERM without the lame duck (one process per pod or container is the way to run
    # behind an orchestrator).
    for key, value in flags.items():
        os.environ[f"SENTIMENT_{key.upper()}"] = str(value)
    os.environ["SENTIMENT_PINNED_VERSIONS"] = json.dumps(promoted_versions(settings))
    uvicorn.run("service.http.app:create_app", factory=True, workers=settings.workers, **server)


def promoted_versions(settings: Settings) -> dict[str, str]:
    """Each served model's promoted version now, for the workers to serve whenever uvicorn
    (re)starts them (a pointer that cannot be read is left for its worker to report)."""
    if settings.model_dir is not None:
        return {}
    versions = {}
    for name in settings.served_models():
        with contextlib.suppress(BundleError):
            versions[name] = promoted_bundle(settings.models_root, name).name
    return versions


def checked_settings(flags: dict[str, Any]) -> Settings:
    """The settings, or exit 2 with what to fix (with --ray too: the replicas would read
    the same values and fail the same way, one after another)."""
    try:
        settings = Settings(**flags)
    except ValidationError as exc:
        print(f"sentiment-serve: error: invalid settings: {settings_error(exc)}", file=sys.stderr)
        sys.exit(2)
    except SettingsError as exc:  # an environment value its source could not parse
        print(f"sentiment-serve: error: invalid settings: {exc}", file=sys.stderr)
        sys.exit(2)
    if problem := settings.missing_bundle_paths() or _unusable_host(settings.host):
        # A path that does not exist is a mistake to fix, not a state to wait out: fail
        # now. (A bundle that exists but fails its checks keeps the server up, not ready.)
        print(f"sentiment-serve: error: {problem}", file=sys.stderr)
        sys.exit(2)
    return settings


def _unusable_host(host: str) -> str | None:
    """A bind address that does not even resolve (a typo such as 999.1.1.1), or None."""
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        return f"SENTIMENT_HOST {host!r} is not an address to listen on ({exc})"
    return None


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    from service.http.graceful import DRAIN_GRACE_S
    from service.http.protocol import GuardedHttpToolsProtocol

    return {
        "host": settings.host,
        "port": settings.port,
        "http": GuardedHttpToolsProtocol,  # limits on a request head's size and time
        "log_config": None,
        "access_log": False,
        # uvicorn cancels what is still running then (a 500 from uvicorn): first the
        # queued texts get 503s at the drain timeout and running batches a grace to finish.
        "timeout_graceful_shutdown": settings.drain_timeout_s + DRAIN_GRACE_S,
        "server_header": False,
    }


def run_server(app: Any, lame_duck_s: float, **options: Any) -> None:
    """Serve ``app`` in this process until SIGTERM/SIGINT, then stop without resetting a
    connection (``service.http.graceful``)."""
    from service.http.graceful import GracefulServer

    config = uvicorn.Config(app, **options)
    refuse = app.state.models.refuse_queued
    server = GracefulServer(config, app.state.lifecycle, lame_duck_s, refuse)
    # Ctrl+C is re-raised as KeyboardInterrupt once shut down: done, as with uvicorn.run.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise SystemExit(3)  # as uvicorn.run: the app's startup failed, or the port was taken


if __name__ == "__main__":
    main()
