"""Fixtures for the reliability suite: a live server with small limits, admin API on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.reliability import (
    ADMIN_TOKEN,
    LIVE_EXPLAIN_TOKENS,
    LIVE_MAX_BODY,
    LIVE_MAX_CHARS,
    LIVE_MAX_SENTENCES,
    LIVE_MAX_TEXTS,
)
from tests.support.servers import Server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server per module, small limits, admin API on: for bad input and fuzzing."""
    with Server(
        tmp_path_factory.mktemp("live"),
        SENTIMENT_MAX_TEXTS_PER_REQUEST=str(LIVE_MAX_TEXTS),
        SENTIMENT_MAX_TEXT_CHARS=str(LIVE_MAX_CHARS),
        SENTIMENT_MAX_BODY_BYTES=str(LIVE_MAX_BODY),
        SENTIMENT_EXPLAIN_MAX_TOKENS=str(LIVE_EXPLAIN_TOKENS),
        SENTIMENT_MAX_SENTENCES_PER_REQUEST=str(LIVE_MAX_SENTENCES),
        SENTIMENT_ADMIN_TOKEN=ADMIN_TOKEN,
        SENTIMENT_LOG_LEVEL="warning",
    ) as server:
        yield server
