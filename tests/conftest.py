"""Fixtures shared by the service and reliability tests: the committed binary model.

Most service tests are about the binary IMDB model (``BINARY_MODEL``): its bundle is
what ``bundle_dir`` gives and what ``make_settings()`` serves unless a test chooses other
models. Tests of several models, and of the default set-up, say so themselves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from service.model.loader import Bundle, load_bundle
from service.settings import Settings
from tests.support.servers import BINARY_MODEL

# SENTIMENT_DATA says where the IMDB data is (training tests); it is not a service setting.
_KEEP = {"SENTIMENT_DATA"}


def _sentiment_env() -> list[str]:
    return [k for k in os.environ if k.upper().startswith("SENTIMENT_") and k.upper() not in _KEEP]


@pytest.fixture(autouse=True)
def _no_sentiment_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's SENTIMENT_* settings must not change what the tests see."""
    for key in _sentiment_env():
        monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def bundle_dir() -> Path:
    """The promoted version of the committed binary model."""
    with pytest.MonkeyPatch.context() as mp:
        for key in _sentiment_env():
            mp.delenv(key)
        return Settings(models=[BINARY_MODEL]).resolved_model_dir().resolve()


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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--ray-cluster",
        action="store_true",
        help="run tests/ray, which start a local multi-node Ray cluster (make test-ray)",
    )
