"""Helpers shared by the service and reliability tests: in-process apps, live servers.

Nothing here hard-codes a model version, a score or a token id: every expectation is
derived from the bundle that ``Settings()`` resolves (its manifest, its tokenizer, its
onnxruntime session).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from service.http.app import create_app
from service.settings import Settings

HERE = Path(__file__).resolve().parent
BINARY_MODEL = "sentiment-lstm"  # the committed IMDB model most service tests are about
PROJECT_ROOT = HERE.parents[1]
STARTUP_TIMEOUT_S = 60

# Strongly worded texts: any real sentiment model must order and label them correctly.
POSITIVE_TEXT = (
    "An absolute masterpiece. Brilliant acting, a moving story, I loved every minute of it."
)
NEGATIVE_TEXT = "Awful. The worst film I have ever seen: boring, stupid and a total waste of time."


def make_settings(**overrides) -> Settings:
    """Settings for a test app: the binary model alone (unless the test picks the models),
    plain-text logs (unless it asks otherwise)."""
    overrides.setdefault("log_json", False)
    if not {"model_dir", "models_root", "models", "model_name"} & set(overrides):
        overrides["models"] = [BINARY_MODEL]
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
    """Wraps ``Bundle.run_groups``; the real model still computes every row it returns.

    ``close()`` makes every later inference call wait until ``open()``; ``fail()`` makes
    them raise. ``entered`` is set once an inference call is waiting at the closed gate.
    """

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()
        self.entered = threading.Event()
        self.failing = False
        self.calls: list[int] = []  # texts per inference call, in call order

    def close(self) -> None:
        self.entered.clear()
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    def fail(self, failing: bool = True) -> None:
        self.failing = failing

    def wrap(self, original: Callable) -> Callable:
        gate = self

        def run_groups(bundle_self, groups):
            gate.calls.append(sum(len(group) for group in groups))
            if not gate._open.is_set():
                gate.entered.set()
                if not gate._open.wait(timeout=30):
                    raise RuntimeError("test gate never opened")
            if gate.failing:
                raise RuntimeError("injected inference failure")
            return original(bundle_self, groups)

        return run_groups


class Server:
    """``sentiment-serve`` in a subprocess on 127.0.0.1 and a free port (serve_with_gate.py).

    ``env`` adds SENTIMENT_* settings (the caller's own SENTIMENT_* variables are dropped).
    While the file ``gate`` exists every inference call waits (see serve_with_gate.py).
    ``start()`` waits for /health/ready (or only /health/live with ``wait_ready=False``);
    ``stop()`` kills whatever is left. Output (JSON log lines) goes to ``log_path``.
    """

    def __init__(self, tmp_path: Path, **env: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.gate = tmp_path / "gate"
        self.entered = tmp_path / "entered"
        self.log_path = tmp_path / f"server-{self.port}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SENTIMENT_")},
            "SVC_TEST_GATE": str(self.gate),
            "SVC_TEST_ENTERED": str(self.entered),
            "SENTIMENT_LOG_JSON": "true",
            "SENTIMENT_DRAIN_TIMEOUT_S": "20",
            # No lame duck unless a test asks: SIGTERM tests would each wait it out.
            "SENTIMENT_LAME_DUCK_S": "0",
            # The script's own folder comes first on its sys.path, not the project's: without
            # this, the venv's editable install (any checkout's) would be what is served.
            "PYTHONPATH": os.pathsep.join(
                [str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            **env,
        }
        if not {"SENTIMENT_MODEL_DIR", "SENTIMENT_MODELS_ROOT", "SENTIMENT_MODELS"} & set(env):
            self.env["SENTIMENT_MODELS"] = BINARY_MODEL
        self.process: subprocess.Popen | None = None
        self.log = None

    def start(self, wait_ready: bool = True) -> None:
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "serve_with_gate.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        probe = "/health/ready" if wait_ready else "/health/live"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"server exited early:\n{self.output()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}{probe}", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"server not up within {STARTUP_TIMEOUT_S} s:\n{self.output()}")

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_bytes(self) -> int:
        """Resident memory of the server process (VmRSS in /proc/<pid>/status)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmRSS for pid {self.pid}")

    def wait_for_inference(self, timeout_s: float = 30.0) -> None:
        """Until an inference call has reached the gate (``gate`` must exist)."""
        deadline = time.monotonic() + timeout_s
        while not self.entered.exists():
            assert time.monotonic() < deadline, "no request reached inference"
            time.sleep(0.01)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.gate.unlink(missing_ok=True)
        if self.log is not None:
            self.log.close()


def raw_http(port: int, request: bytes, timeout_s: float = 10) -> bytes:
    """Send raw bytes to 127.0.0.1:port; everything read until the server closes or times out."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(request)
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)
