"""Fixtures for the service tests: the bundle ``Settings()`` resolves, and what derives from it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from svc_testkit import PredictGate

from service.bundle import Bundle, load_bundle
from service.settings import Settings
from service.tokenizer import TextEncoder


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
def bundle(bundle_dir: Path) -> Bundle:
    """The bundle loaded directly (not through the service), to derive expected scores."""
    return load_bundle(bundle_dir)


@pytest.fixture(scope="session")
def encoder(bundle_dir: Path, manifest: dict) -> TextEncoder:
    """An encoder built independently of the service, from the bundle's own files."""
    spec = manifest["input"]
    return TextEncoder.from_file(
        bundle_dir / manifest.get("tokenizer_file", "tokenizer.json"),
        max_length=int(spec["max_length"]),
        truncation=spec["truncation"],
    )


@pytest.fixture(scope="session")
def reference(manifest: dict) -> list[dict]:
    refs = manifest.get("reference") or []
    assert refs, "the bundle's manifest has no reference texts"
    return refs


@pytest.fixture
def predict_gate(monkeypatch: pytest.MonkeyPatch):
    """A gate on inference; install it before the app starts. Reopened at teardown."""
    gate = PredictGate()
    monkeypatch.setattr(Bundle, "score_ids", gate.wrap(Bundle.score_ids))
    try:
        yield gate
    finally:
        gate.fail(False)
        gate.open()
