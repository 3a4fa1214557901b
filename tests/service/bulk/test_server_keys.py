"""``sentiment-score --server`` against a service that needs an API key: the key comes from
the environment variable SENTIMENT_API_KEY (never the command line, which ``ps`` shows)
and goes as ``Authorization: Bearer <key>``; without it, or with a wrong one, the run stops
(exit 2) saying so and how to give one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.bulk.formats import UsageError
from service.bulk.remote import api_key
from tests.service.bulk.test_processes import csv_bytes, parse_csv, run
from tests.support.servers import NEGATIVE_TEXT, POSITIVE_TEXT, Server


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory) -> Iterator[Server]:
    with Server(
        tmp_path_factory.mktemp("bulk-keyed-server"),
        SENTIMENT_API_KEYS="key-one,key-two",
        SENTIMENT_LOG_LEVEL="warning",
    ) as live:
        yield live


def test_the_key_from_the_environment_is_sent(keyed_server):
    texts = [POSITIVE_TEXT, NEGATIVE_TEXT]
    done = run(
        "-", "--server", keyed_server.base, stdin=csv_bytes(texts), SENTIMENT_API_KEY="key-two"
    )
    assert done.returncode == 0, done.stderr.decode()
    assert [r["label"] for r in parse_csv(done.stdout)] == ["positive", "negative"]


def test_without_a_key_the_run_says_how_to_give_one(keyed_server):
    done = run("-", "--server", keyed_server.base, stdin=csv_bytes(["fine"]))
    assert done.returncode == 2
    said = done.stderr.decode()
    assert "/models answered 401: the service needs an API key" in said
    assert "environment variable SENTIMENT_API_KEY" in said
    assert len(said.splitlines()) == 1 and "Traceback" not in said


def test_a_wrong_key_is_refused(keyed_server):
    done = run(
        "-", "--server", keyed_server.base, stdin=csv_bytes(["x"]), SENTIMENT_API_KEY="key-three"
    )
    assert done.returncode == 2
    assert "the service refused the API key in SENTIMENT_API_KEY" in done.stderr.decode()


def test_the_key_must_fit_in_a_header(monkeypatch):
    monkeypatch.setenv("SENTIMENT_API_KEY", "  key-one \n")
    assert api_key() == "key-one"
    monkeypatch.setenv("SENTIMENT_API_KEY", "")
    assert api_key() is None
    monkeypatch.setenv("SENTIMENT_API_KEY", "key\r\nX-Injected: 1")
    with pytest.raises(UsageError, match="printable ASCII"):
        api_key()
