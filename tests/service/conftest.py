"""Fixtures for the service tests: the bundle ``Settings()`` resolves, and what derives from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from svc_testkit import PredictGate

from service.bundle import Bundle
from service.tokenizer import TextEncoder


@pytest.fixture(scope="session")
def encoder(bundle_dir: Path, manifest: dict) -> TextEncoder:
    """An encoder built independently of the service, from the bundle's own files."""
    spec = manifest["input"]
    return TextEncoder.from_file(
        bundle_dir / manifest.get("tokenizer_file", "tokenizer.json"),
        max_length=int(spec["max_length"]),
        truncation=spec["truncation"],
    )


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
