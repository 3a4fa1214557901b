"""The request-head limits of ``GuardedHttpToolsProtocol``, on a real uvicorn server and
raw sockets (an HTTP client would not send what these tests send)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
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


SEND_ERRORS: list[BaseException] = []  # an app's answer the server could not take


async def app(scope, receive, send) -> None:
    """Echoes the body's length; sleeps first on /slow, between the answer's head and body on
    /stream; /early answers without reading the body."""
    size, more = 0, scope["path"] != "/early"
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["path"] == "/slow":
        await asyncio.sleep(APP_SLEEP_S)
    body = json.dumps({"bytes": size}).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if scope["path"] == "/stream":  # the answer's head now, its body later
            await asyncio.sleep(APP_SLEEP_S)
        await send({"type": "http.response.body", "body": body})
    except Exception as exc:
        SEND_ERRORS.append(exc)
        raise


def start_server() -> tuple[uvicorn.Server, threading.Thread, int]:
    """The test app on a free port, in a thread: the server, its thread, the port."""
    config = uvicorn.Config(app, port=0, http=SmallLimits, lifespan="off", log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    return server, thread, server.servers[0].sockets[0].getsockname()[1]


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server, thread, port = start_server()
    yield port
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


@pytest.mark.parametrize(
    "big",
    [
        pytest.param(request(extra=b"X-Big: " + b"a" * 10_000 + b"\r\n"), id="a header"),
        pytest.param(b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", id="the URL"),
    ],
)
def test_a_whole_head_over_the_limit_in_one_chunk_gets_431(port, big):
    """The parser would have taken a complete head of any size that came in one read."""
    with Connection(port) as conn:
        conn.send(big)
        status, body = conn.answer()
        assert status == 431
        assert body["error"]["message"] == "the request line and headers exceed 4096 bytes"
        assert conn.closed()


def test_the_431_is_not_lost_to_a_reset_while_the_client_is_still_sending(port):
    """Closing with unread bytes resets the connection, which can destroy the answer: the
    server reads and drops what comes for a moment first (a lingering close)."""
    with Connection(port) as conn:
        conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000)
        conn.send(b"a" * 4_000_000)  # the rest of the head, still coming
        status, _ = conn.answer()
        assert status == 431
        assert conn.closed()


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_a_head_whose_end_is_cut_across_chunks_is_not_taken_for_a_big_one(port, cut):
    """The next chunk starts with the rest of the blank line, then a big body."""
    body = b"x" * 100_000
    whole = request("/", body)
    head_end = len(whole) - len(body)
    with Connection(port) as conn:
        conn.send(whole[: head_end - cut])
        time.sleep(0.2)  # two reads on the server
        conn.send(whole[head_end - cut :])
        assert conn.answer() == (200, {"bytes": 100_000})


@pytest.mark.parametrize(
    ("raw", "found"),
    [
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", "Content-Length"),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "Duplicate"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", "header value"),
        (b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n", "method"),
        # the head is whole, so the app has started: its answer must not follow the 400
        (b"POST /early HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
    ],
)
def test_bytes_the_parser_refuses_get_a_400_naming_what_it_found(port, raw, found):
    """uvicorn answers these in plain text ("Invalid HTTP request received.")."""
    SEND_ERRORS.clear()
    with Connection(port) as conn:
        conn.send(raw)
        status, body = conn.answer()
        assert status == 400
        assert body["error"]["code"] == "bad_request"
        assert body["error"]["message"].startswith("malformed HTTP request: ")
        assert found in body["error"]["message"]
        assert conn.closed()
    time.sleep(0.2)  # the app, if it started, has tried to answer by now
    assert SEND_ERRORS == []  # it was told the client had gone, not left to write and fail


BIG_HEAD = request(extra=b"X-Big: " + b"a" * 10_000 + b"\r\n")


@pytest.mark.parametrize(
    ("chunks", "answered"),
    [
        pytest.param([b"\r\n\r\n" + BIG_HEAD], 0, id="after blank lines"),
        pytest.param([request() + BIG_HEAD], 1, id="second in a chunk"),
        pytest.param([request("/", b"x" * 3)[:-2], b"xx" + BIG_HEAD], 1, id="after a body's end"),
        pytest.param(
            [request("/", b"x" * 3)[:-2], b"xx" + BIG_HEAD[:-100], BIG_HEAD[-100:]],
            1,
            id="after a body's end, cut",
        ),
        pytest.param(
            [request("/early", b"12345")[:-5], b"12345" + BIG_HEAD], 1, id="after an early answer"
        ),
        pytest.param(
            [request("/early", b"12345")[:-5], b"12345" + BIG_HEAD[:-100], BIG_HEAD[-100:]],
            1,
            id="after an early answer, cut",
        ),
        pytest.param(
            [request("/early", b"12345")[:-5], b"12345"]
            + [b"POST / HTTP/1.1\r\nX-Big: " + b"a" * 3_000 for _ in range(3)],
            1,
            id="after an early answer, in pieces",
        ),
    ],
)
def test_no_way_around_the_head_limit(port, chunks, answered):
    """Ways a head over the limit slipped past it (two reviews of the check). The
    requests before it are answered first, in turn."""
    with Connection(port) as conn:
        for chunk in chunks:
            conn.send(chunk)
            time.sleep(0.1)  # one read each, as far as the server keeps up
        assert [conn.answer()[0] for _ in range(answered)] == [200] * answered
        status, body = conn.answer()
        assert status == 431, body
        assert conn.closed()


def test_a_400_after_a_long_unfinished_head_is_the_only_answer(port, caplog):
    """The parser's 400 comes in a chunk that also takes a cut head past the limit: one
    answer, not a second one written after the first (an error on the transport)."""
    with caplog.at_level(logging.ERROR), Connection(port) as conn:
        conn.send(b"POST / HTTP/1.1\r\nX-A: " + b"a" * 3_000)
        time.sleep(0.1)
        conn.send(b"a" * 500 + b"\x00\r\n\r\n" + b"x" * 1_000)
        status, body = conn.answer()
        assert status == 400 and "header value" in body["error"]["message"]
        assert conn.closed()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_close_waits_while_the_client_is_still_sending(port):
    """Closed after 2 s of quiet (or 10 s in all), not 2 s after the answer."""
    with Connection(port) as conn:
        conn.send(b"POST / HTTP/1.1\r\nX-Big: " + b"a" * 10_000)
        for _ in range(10):  # 3 s of sending, a piece every 0.3 s
            time.sleep(0.3)
            conn.send(b"a" * 1_000)
        assert conn.answer()[0] == 431
        assert conn.closed()


def test_the_lingering_close_reads_even_where_reading_was_paused(port):
    """A body over uvicorn's 64 KiB high-water mark pauses reading until the app takes
    it; a refusal must resume it, or the close comes with bytes unread (a reset)."""
    with Connection(port) as conn:
        chunk = b"%x\r\n" % 100_000 + b"x" * 100_000 + b"\r\n"
        conn.send(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + b"zz\r\n")
        conn.send(b"x" * 8_000_000)  # ("zz" is not a chunk size)
        status, body = conn.answer()
        assert status == 400 and "chunk size" in body["error"]["message"]


def test_a_400_while_an_answer_is_being_sent_comes_after_it(port):
    """Answers go in turn: one written at once would land inside the answer under way."""
    with Connection(port) as conn:
        conn.send(request("/stream"))
        time.sleep(APP_SLEEP_S / 2)  # its answer's head is out, its body is not
        conn.send(b"GARBAGE\r\n\r\n")
        assert conn.answer() == (200, {"bytes": 0})
        assert conn.answer()[0] == 400
        assert conn.closed()


def test_a_400_after_a_request_whose_answer_is_coming_does_not_replace_it(port):
    with Connection(port) as conn:
        conn.send(request("/slow", b"{}") + b"GARBAGE\r\n\r\n")
        assert conn.answer() == (200, {"bytes": 2})
        assert conn.answer()[0] == 400
        assert conn.closed()


def test_a_400_to_a_client_waiting_for_100_continue_is_the_only_write(port, caplog):
    """The app, told the client has gone, must not write "100 Continue" after the end."""
    SEND_ERRORS.clear()
    head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
    with caplog.at_level(logging.ERROR), Connection(port) as conn:
        conn.send(head + b"zz\r\n")
        assert conn.answer()[0] == 400
        assert conn.closed()
    time.sleep(0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert SEND_ERRORS == []


def test_trailer_fields_of_a_chunked_body_are_limited_as_a_head(port):
    """They are headers the parser holds in memory, after the last chunk."""
    with Connection(port) as conn:
        conn.send(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n")
        for _ in range(10):
            time.sleep(0.05)
            conn.send(b"X-T: " + b"a" * 1_000 + b"\r\n")
        status, body = conn.answer()
        assert status == 431, body
        assert conn.closed()
    with Connection(port) as conn:  # a body in many small chunks is not trailers
        conn.send(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(20):
            time.sleep(0.02)
            conn.send(b"1\r\nx\r\n" * 1_000)
        conn.send(b"0\r\nX-T: 1\r\n\r\n")
        assert conn.answer() == (200, {"bytes": 20_000})


def chunked(path: str, chunks: bytes) -> bytes:
    return f"POST {path} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + chunks


@pytest.mark.parametrize(
    ("refused", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),  # a head the parser refuses, after the queued requests
        (request("/", b"", b"X-Big: " + b"a" * 5_000 + b"\r\n"), 431),  # a head too large
    ],
)
def test_a_refusal_after_pipelined_requests_comes_after_all_their_answers(port, refused, status):
    """Requests read whole are answered, in turn, before the refusal and the close."""
    with Connection(port) as conn:
        conn.send(request("/slow", b"{}") + request("/", b"abc") + refused)
        assert conn.answer() == (200, {"bytes": 2})
        assert conn.answer() == (200, {"bytes": 3})
        assert conn.answer()[0] == status
        assert conn.closed()


def test_a_queued_request_whose_body_breaks_the_parser_gets_the_400_in_its_turn(port):
    with Connection(port) as conn:
        conn.send(
            request("/slow", b"{}") + request("/", b"a") + chunked("/", b"3\r\nabc\r\nzz\r\n")
        )
        assert conn.answer() == (200, {"bytes": 2})
        assert conn.answer() == (200, {"bytes": 1})
        status, body = conn.answer()
        assert status == 400 and "chunk size" in body["error"]["message"]
        assert conn.closed()


def test_a_refused_head_gets_an_access_line_naming_the_problem(port, caplog):
    """The middleware never sees these requests; the protocol logs each refusal itself."""
    with caplog.at_level(logging.INFO, "service.access"), Connection(port) as conn:
        conn.send(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n")
        status, body = conn.answer()
        assert conn.closed()
    (line,) = [r for r in caplog.records if r.name == "service.access"]
    assert line.status == status == 400 and line.error == "bad_request"
    assert line.request_id == body["request_id"] and line.client == "127.0.0.1"
    assert line.getMessage() == f"refused 400 {body['error']['message']}"


def test_no_refusal_is_sent_or_logged_after_an_answer_that_closed_the_connection(port, caplog):
    closing = request("/", b"a", b"Connection: close\r\n")
    with caplog.at_level(logging.INFO, "service.access"), Connection(port) as conn:
        conn.send(request("/slow", b"{}") + closing + b"GARBAGE\r\n\r\n")
        assert conn.answer() == (200, {"bytes": 2})
        assert conn.answer() == (200, {"bytes": 1})
        assert conn.closed()
    assert not [r for r in caplog.records if r.name == "service.access"]


def test_a_shutdown_while_pipelined_answers_drain_still_sends_the_refusal():
    """uvicorn's shutdown marks the newest request's answer as the last: the refusal after it
    was lost. Now it is sent in its turn and ends the connection, with no lingering."""
    server, thread, port = start_server()
    with Connection(port) as conn:
        conn.send(request("/slow", b"{}") + request("/", b"abc") + b"GARBAGE\r\n\r\n")
        time.sleep(APP_SLEEP_S / 4)
        server.should_exit = True
        assert conn.answer() == (200, {"bytes": 2})
        assert conn.answer() == (200, {"bytes": 3})
        assert conn.answer()[0] == 400
        assert conn.closed()
    thread.join(10)
    assert not thread.is_alive()
