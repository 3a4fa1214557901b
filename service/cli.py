"""``sentiment-serve``: run the API with uvicorn (flags override SENTIMENT_* env settings)."""

from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = Settings(**overrides)

    from service.app import create_app

    app = create_app(settings)
    # One process: the batcher merges concurrent requests and onnxruntime uses the cores
    # through the inference threads; more processes would split the batches (and the RAM).
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.drain_timeout_s,
        server_header=False,
    )


if __name__ == "__main__":
    main()
