"""Fixtures for the service tests: the bundle ``Settings()`` resolves, and what derives from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiment_core.encoder import TextEncoder
from service.model.loader import Bundle
from tests.support.servers import PredictGate


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
    monkeypatch.setattr(Bundle, "run_groups", gate.wrap(Bundle.run_groups))
    try:
        yield gate
    finally:
        gate.fail(False)
        gate.open()
