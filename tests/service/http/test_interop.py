"""HTTP as ordinary clients speak it, against a live server: an over-limit body gets its
413 even from a client that sends the whole body before reading (Python's urllib), HEAD
works wherever GET does, and the admin API refuses a caller without the token before it
looks at the body."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import httpx
import pytest

from service.http.body import discard_body
from tests.support.servers import BINARY_MODEL, Server, make_settings, serve

TOKEN = "interop-admin-token-0123456789"
MAX_BODY = 4 * 1024 * 1024  # the default SENTIMENT_MAX_BODY_BYTES
TEN_MB = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    with Server(
        tmp_path_factory.mktemp("interop"),
        SENTIMENT_ADMIN_TOKEN=TOKEN,
        SENTIMENT_MAX_BODY_BYTES=str(MAX_BODY),
        SENTIMENT_LOG_LEVEL="warning",
    ) as live:
        yield live


# -- 413 for every client ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "error_of"),
    [
        ("/predict", lambda body: body["error"]["message"]),
        (f"/v2/models/{BINARY_MODEL}/infer", lambda body: body["error"]),
    ],
    ids=["predict", "v2-infer"],
)
def test_urllib_with_a_10_mb_text_gets_the_413(server, path, error_of):
    """urllib sends all 10 MB, then reads: the server must read (and drop) the body
    rather than close on it, or urllib sees a connection reset instead of the answer."""
    body = json.dumps({"text": "a" * TEN_MB}).encode()
    request = urllib.request.Request(
        server.base + path, data=body, headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413
    assert refused.value.headers["content-type"] == "application/json"
    assert "SENTIMENT_MAX_BODY_BYTES" in error_of(json.loads(refused.value.read()))
    assert httpx.get(f"{server.base}/health/ready", timeout=10).status_code == 200


def test_httpx_streaming_a_chunked_body_over_the_limit_gets_the_413(server):
    def chunks():
        for _ in range(3 * MAX_BODY // 65536):
            yield b"a" * 65536

    response = httpx.post(
        f"{server.base}/predict",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_client_that_stops_sending_is_not_waited_for(server):
    """Declared 50 MB, sends a few bytes, then waits: the 413 comes at once, and the
    server closes the connection after its idle bound instead of holding it open."""
    head = (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 50000000\r\n\r\n" + b'{"text": "'
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        started = time.monotonic()
        sock.sendall(head)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and not data.startswith(b"HTTP/1.1 413"):
                break
        closed_after = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert b"connection: close" in data.lower()
    assert closed_after < 8, f"connection held {closed_after:.1f} s"


# -- discard_body's bounds -------------------------------------------------------------------------
def _receiver(chunks: int, size: int, gap_s: float = 0.0, more_after: bool = True):
    sent = 0

    async def receive():
        nonlocal sent
        if gap_s:
            await asyncio.sleep(gap_s)
        sent += 1
        return {
            "type": "http.request",
            "body": b"x" * size,
            "more_body": sent < chunks or more_after,
        }

    return receive


async def test_discard_body_reads_to_the_end_of_the_body():
    assert await discard_body(_receiver(10, 1000, more_after=False), 1 << 20, 5) == 10_000


async def test_discard_body_stops_at_the_byte_bound():
    dropped = await discard_body(_receiver(10**6, 65536), 1 << 20, 5)
    assert 1 << 20 < dropped <= (1 << 20) + 65536


async def test_discard_body_stops_when_the_client_goes_quiet():
    started = time.monotonic()
    assert await discard_body(_receiver(10, 10, gap_s=1.0), 1 << 20, 5, idle_s=0.1) == 0
    assert time.monotonic() - started < 0.5


async def test_discard_body_stops_at_the_time_bound():
    started = time.monotonic()
    dropped = await discard_body(_receiver(10**6, 10, gap_s=0.01), 1 << 20, 0.3)
    assert dropped > 0 and time.monotonic() - started < 1.0


async def test_discard_body_stops_on_disconnect():
    async def gone():
        return {"type": "http.disconnect"}

    assert await discard_body(gone, 1 << 20, 5) == 0


# -- HEAD wherever GET works -----------------------------------------------------------------------
def get_paths(base: str) -> list[str]:
    schema = httpx.get(f"{base}/openapi.json", timeout=10).json()
    paths = [p for p, ops in schema["paths"].items() if "get" in ops]
    concrete = [p.replace("{name}", BINARY_MODEL) for p in paths if "{version}" not in p]
    return [*concrete, "/openapi.json", "/docs", "/redoc"]


def test_head_answers_like_get_without_a_body(server):
    paths = get_paths(server.base)
    assert "/health/live" in paths and "/v2/health/ready" in paths and "/metrics" in paths
    with httpx.Client(base_url=server.base, timeout=10) as client:
        for path in paths:
            got = client.get(path)
            head = client.head(path)
            assert head.status_code == got.status_code == 200, path
            assert head.content == b"", path
            assert head.headers["content-type"] == got.headers["content-type"], path
            if path != "/metrics":  # (its counters move between the two calls)
                assert head.headers["content-length"] == got.headers["content-length"], path
        assert client.head("/predict").status_code == 405
        assert client.head("/no/such/path").status_code == 404


# -- admin: 401 before the body is looked at -----------------------------------------------------
UNREAD_BODIES = [
    (b"{not json", "application/json"),
    (b"", "application/json"),
    (b'{"version": 3, "nonsense": true}', "application/json"),
    (b"\xff\xfe", "application/json"),
    (b"version=1", "application/x-www-form-urlencoded"),
    (b'{"version": "x"}', None),
]


@pytest.mark.parametrize(("body", "content_type"), UNREAD_BODIES)
@pytest.mark.parametrize(
    "auth", [None, "Bearer wrong", f"Basic {TOKEN}"], ids=["none", "wrong", "basic"]
)
def test_admin_without_the_token_is_401_whatever_the_body(server, body, content_type, auth):
    headers = {k: v for k, v in (("content-type", content_type), ("authorization", auth)) if v}
    response = httpx.post(f"{server.base}/admin/model", content=body, headers=headers, timeout=10)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_admin_with_the_token_still_validates_the_body():
    async with serve(make_settings(admin_token=TOKEN)) as (_, client):
        auth = {"authorization": f"Bearer {TOKEN}"}
        response = await client.post(
            "/admin/model",
            content=b"{not json",
            headers={**auth, "content-type": "application/json"},
        )
        assert response.status_code == 422
        assert "not valid JSON" in response.json()["error"]["message"]
        response = await client.post(
            "/admin/model", content=b"{}", headers={**auth, "content-type": "text/plain"}
        )
        assert response.status_code == 415
