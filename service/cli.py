"""``sentiment-serve``: run the API with uvicorn (flags override SENTIMENT_* env settings)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from service.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sentiment-serve", description=__doc__)
    parser.add_argument("--host", help="bind address (env SENTIMENT_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (env SENTIMENT_PORT, default 8000)")
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="serve this one bundle directory (env SENTIMENT_MODEL_DIR; default: the "
        "promoted version of every model under models/, see SENTIMENT_MODELS)",
    )
    parser.add_argument(
        "--workers", type=int, help="worker processes (env SENTIMENT_WORKERS, default 1)"
    )
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"sentiment-serve: error: invalid settings: {_first_error(exc)}", file=sys.stderr)
        sys.exit(2)
    if problem := settings.missing_bundle_paths():
        # A path that does not exist is a mistake to fix, not a state to wait out: fail
        # now. (A bundle that exists but fails its checks keeps the server up, not ready.)
        print(f"sentiment-serve: error: {problem}", file=sys.stderr)
        sys.exit(2)
    server = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": settings.drain_timeout_s,
        "server_header": False,
    }
    if settings.workers == 1:
        # Default: one process. The batcher merges concurrent requests and onnxruntime
        # runs in its own threads; the event loop (one core) bounds HTTP throughput.
        from service.http.app import create_app

        uvicorn.run(create_app(settings), **server)
        return
    # Several processes, each with its own model and batcher: about N× the HTTP
    # throughput for N× the memory (docs/performance.md). Workers read SENTIMENT_* from
    # the environment, so the flags travel there.
    for key, value in overrides.items():
        os.environ[f"SENTIMENT_{key.upper()}"] = str(value)
    uvicorn.run("service.http.app:create_app", factory=True, workers=settings.workers, **server)


if __name__ == "__main__":
    main()


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    name = f"SENTIMENT_{field.upper()}" if field else "settings"
    return f"{name}: {err['msg'].removeprefix('Value error, ')}"
