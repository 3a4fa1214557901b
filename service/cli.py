"""``sentiment-serve``: run the API with uvicorn (flags override SENTIMENT_* env settings)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn

from service.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sentiment-serve", description=__doc__)
    parser.add_argument("--host", help="bind address (env SENTIMENT_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (env SENTIMENT_PORT, default 8000)")
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="bundle directory (env SENTIMENT_MODEL_DIR; default: "
        "the newest version under models/sentiment-lstm/)",
    )
    parser.add_argument(
        "--workers", type=int, help="worker processes (env SENTIMENT_WORKERS, default 1)"
    )
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = Settings(**overrides)
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
