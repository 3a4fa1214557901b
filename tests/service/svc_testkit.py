"""Helpers shared by the service tests (imported as a plain module: tests/service is on sys.path).

Nothing here hard-codes a model version, a score or a token id: every expectation is
derived from the bundle that ``Settings()`` resolves (its manifest, its tokenizer, its
onnxruntime session).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from service.app import create_app
from service.settings import Settings

# Strongly worded texts: any real sentiment model must order and label them correctly.
POSITIVE_TEXT = (
    "An absolute masterpiece. Brilliant acting, a moving story, I loved every minute of it."
)
NEGATIVE_TEXT = "Awful. The worst film I have ever seen: boring, stupid and a total waste of time."


def make_settings(**overrides) -> Settings:
    """Settings for a test app (plain-text logs unless a test asks otherwise)."""
    overrides.setdefault("log_json", False)
    return Settings(**overrides)


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app with its lifespan running, and an in-process client for it."""
    app = create_app(settings, configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", timeout=30
        ) as client:
            yield app, client


def copy_bundle(src: Path, dst: Path, edit_manifest: Callable[[dict], None] | None = None) -> Path:
    """Copy the manifest and every hashed file of a bundle (not the Keras model)."""
    dst.mkdir(parents=True)
    manifest = json.loads((src / "manifest.json").read_text())
    for name in manifest["files"]:
        shutil.copyfile(src / name, dst / name)
    if edit_manifest is not None:
        edit_manifest(manifest)
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dst


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    where = len(data) // 2 if offset is None else offset
    data[where] ^= 0x01
    path.write_bytes(bytes(data))


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``condition`` on the event loop; fail (rather than hang) if it never holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout_s} s")
        await asyncio.sleep(0.002)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PredictGate:
    """Wraps ``Bundle.score_ids``; the real model still computes every score it returns.

    ``close()`` makes every later inference call wait until ``open()``; ``fail()`` makes
    them raise. ``entered`` is set once an inference call is waiting at the closed gate.
    """

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()
        self.entered = threading.Event()
        self.failing = False
        self.calls: list[int] = []  # batch sizes, in call order

    def close(self) -> None:
        self.entered.clear()
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    def fail(self, failing: bool = True) -> None:
        self.failing = failing

    def wrap(self, original: Callable) -> Callable:
        gate = self

        def score_ids(bundle_self, sequences):
            gate.calls.append(len(sequences))
            if not gate._open.is_set():
                gate.entered.set()
                if not gate._open.wait(timeout=30):
                    raise RuntimeError("test gate never opened")
            if gate.failing:
                raise RuntimeError("injected inference failure")
            return original(bundle_self, sequences)

        return score_ids
