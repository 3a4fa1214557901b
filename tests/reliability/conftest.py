"""Fixtures for the reliability suite: live servers, the default bundle, a response check.

The shared helpers live in ``tests/service/svc_testkit.py`` (``serve``, ``Server``,
``copy_bundle``, ...); tests/service has no ``__init__.py``, so its folder goes on
``sys.path`` here, exactly as pytest puts it there for the service tests.
"""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server per module, small limits, admin API on: for bad input and fuzzing."""
    with Server(
        tmp_path_factory.mktemp("live"),
        SENTIMENT_MAX_TEXTS_PER_REQUEST=str(LIVE_MAX_TEXTS),
        SENTIMENT_MAX_TEXT_CHARS=str(LIVE_MAX_CHARS),
        SENTIMENT_MAX_BODY_BYTES=str(LIVE_MAX_BODY),
        SENTIMENT_ADMIN_TOKEN=ADMIN_TOKEN,
        SENTIMENT_LOG_LEVEL="warning",
    ) as server:
        yield server
