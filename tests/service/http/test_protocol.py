"""The request-head limits of ``GuardedHttpToolsProtocol``, on a real uvicorn server and
raw sockets (an HTTP client would not send what these tests send)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn

from service.cli import uvicorn_options
from service.http.protocol import GuardedHttpToolsProtocol
from tests.support.servers import make_settings

APP_SLEEP_S = 1.0  # longer than the head timeout below: answering is not a head


class SmallLimits(GuardedHttpToolsProtocol):
    max_head_bytes = 4096
    head_timeout_s = 0.5


async def app(scope, receive, send) -> None:
    """Echoes the body's length; sleeps first on /slow; /early answers without reading it."""
    size, more = 0, scope["path"] != "/early"
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["path"] == "/slow":
        await asyncio.sleep(APP_SLEEP_S)
    body = json.dumps({"bytes": size}).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    config = uvicorn.Config(app, port=0, http=SmallLimits, lifespan="off", log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(10)


class Connection:
    """A raw socket and a buffered reader of its answers."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.settimeout(10)  # a hang fails the test instead of stalling the suite
        self.reader = self.sock.makefile("rb")

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.close()
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> tuple[int, dict]:
        """The next whole answer: its status and JSON body."""
        status = self.reader.readline()
        assert status, "closed without an answer"
        length = 0
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = self.reader.read(length)
        assert len(body) == length, "closed in the middle of an answer"
        return int(status.split()[1]), json.loads(body)

    def closed(self) -> bool:
        return self.reader.read(1) == b""


def request(path: str = "/", body: bytes = b"", extra: bytes = b"") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n".encode()
    return head + extra + b"\r\n" + body


def test_the_service_serves_with_the_guarded_protocol():
    assert uvicorn_options(make_settings())["http"] is GuardedHttpToolsProtocol


def test_a_head_over_the_limit_gets_431_and_the_server_goes_on(port):
    with Connection(port) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000)
        status, body = conn.answer()
        assert status == 431
        assert body["error"]["code"] == "header_too_large"
        assert "4096 bytes" in body["error"]["message"]
        assert conn.closed()
    with Connection(port) as conn:
        conn.send(request(extra=b"X-Fits: " + b"a" * 3000 + b"\r\n"))
        assert conn.answer() == (200, {"bytes": 0})


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(port):
    with Connection(port) as conn:
        assert conn.closed()


def test_a_head_that_stops_arriving_gets_408(port):
    with Connection(port) as conn:
        conn.send(b"POST / HTTP/1.1\r\nHo")
        status, body = conn.answer()
        assert status == 408
        assert body["error"]["code"] == "header_timeout"
        assert conn.closed()


def test_a_head_cut_short_on_a_kept_alive_connection_gets_408(port):
    with Connection(port) as conn:
        conn.send(request("/", b"x"))
        assert conn.answer() == (200, {"bytes": 1})
        conn.send(b"POST / HTTP/1.1\r\nHo")  # the next request's head, never finished
        status, body = conn.answer()
        assert status == 408
        assert body["error"]["code"] == "header_timeout"
        assert conn.closed()


def test_after_an_early_answer_the_rest_of_the_body_and_the_next_head_are_still_limited(port):
    """An answer sent before the body was read (a 404, a health check) must not switch the
    limits off for the rest of the connection."""
    with Connection(port) as conn:
        conn.send(request("/early", b"12345")[:-5])  # the head, not the body
        assert conn.answer() == (200, {"bytes": 0})
        conn.send(b"12345")  # the body, dropped
        conn.send(request("/", b"x"))  # the next request is served as usual
        assert conn.answer() == (200, {"bytes": 1})
        conn.send(b"POST / HTTP/1.1\r\nX-Big: " + b"a" * 10_000)
        assert conn.answer()[0] == 431
    with Connection(port) as conn:
        conn.send(request("/early", b"x" * 1000)[:-1000])
        assert conn.answer() == (200, {"bytes": 0})
        conn.send(b"x" * 10)  # and then the rest of the body never comes
        assert conn.closed()  # closed at the head deadline, with no second answer


def test_a_slow_answer_and_a_kept_alive_connection_are_not_head_timeouts(port):
    with Connection(port) as conn:
        conn.send(request("/slow", b"{}"))
        assert conn.answer() == (200, {"bytes": 2})
        conn.send(request("/", b"x"))  # the same connection, after the slow answer
        assert conn.answer() == (200, {"bytes": 1})


def test_pipelined_requests_with_big_bodies_are_not_mistaken_for_a_big_head(port):
    body = b"x" * 1_000_000
    with Connection(port) as conn:
        conn.send(request("/", body) + request("/", body) + request("/", b"end"))
        assert [conn.answer() for _ in range(3)] == [
            (200, {"bytes": 1_000_000}),
            (200, {"bytes": 1_000_000}),
            (200, {"bytes": 3}),
        ]
