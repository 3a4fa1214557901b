"""Fixtures for the reliability suite: live servers, the default bundle, a response check.

The shared helpers live in ``tests/service/svc_testkit.py`` (``serve``, ``Server``,
``copy_bundle``, ...); tests/service has no ``__init__.py``, so its folder goes on
``sys.path`` here, exactly as pytest puts it there for the service tests.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_SERVICE_TESTS = str(Path(__file__).resolve().parents[1] / "service")
if _SERVICE_TESTS not in sys.path:
    sys.path.insert(0, _SERVICE_TESTS)

from reliability_kit import (  # noqa: E402
    ADMIN_TOKEN,
    LIVE_MAX_BODY,
    LIVE_MAX_CHARS,
    LIVE_MAX_TEXTS,
)
from svc_testkit import Server  # noqa: E402

from service.bundle import Bundle, load_bundle  # noqa: E402
from service.settings import Settings  # noqa: E402


def _sentiment_env() -> list[str]:
    return [k for k in os.environ if k.upper().startswith("SENTIMENT_")]


@pytest.fixture(autouse=True)
def _no_sentiment_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's SENTIMENT_* variables must not change what the tests see."""
    for key in _sentiment_env():
        monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    """The bundle a default ``Settings()`` serves (whatever version is newest)."""
    with pytest.MonkeyPatch.context() as mp:
        for key in _sentiment_env():
            mp.delenv(key)
        return Settings().resolved_model_dir().resolve()


@pytest.fixture(scope="session")
def manifest(bundle_dir: Path) -> dict:
    return json.loads((bundle_dir / "manifest.json").read_text())


@pytest.fixture(scope="session")
def reference(manifest: dict) -> list[dict]:
    refs = manifest.get("reference") or []
    assert refs, "the bundle's manifest has no reference texts"
    return refs


@pytest.fixture(scope="session")
def bundle(bundle_dir: Path) -> Bundle:
    """The bundle loaded directly (not through the service), to derive expected scores."""
    return load_bundle(bundle_dir)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server per module, small limits, admin API on: for bad input and fuzzing."""
    server = Server(
        tmp_path_factory.mktemp("live"),
        SENTIMENT_MAX_TEXTS_PER_REQUEST=str(LIVE_MAX_TEXTS),
        SENTIMENT_MAX_TEXT_CHARS=str(LIVE_MAX_CHARS),
        SENTIMENT_MAX_BODY_BYTES=str(LIVE_MAX_BODY),
        SENTIMENT_ADMIN_TOKEN=ADMIN_TOKEN,
        SENTIMENT_LOG_LEVEL="warning",
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
