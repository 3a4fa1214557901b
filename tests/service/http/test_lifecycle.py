"""The shutdown phases seen by the app (readiness, the closing gate) and the listener
tools of service/http/graceful.py, without a server process (tests/reliability has the
SIGTERM tests)."""

from __future__ import annotations

import signal
import socket
import sys
import time

import pytest
import uvicorn

from service.http import graceful
from service.http.lifecycle import Phase
from tests.support.servers import make_settings, serve


async def test_readiness_says_shutting_down_while_requests_are_still_served():
    async with serve(make_settings()) as (app, client):
        assert (await client.get("/health/ready")).status_code == 200
        app.state.lifecycle.phase = Phase.LAME_DUCK
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "shutting down"
        assert ready.headers["retry-after"] == "1"  # as every 503
        predicted = await client.post("/predict", json={"text": "Loved it."})
        assert predicted.status_code == 200, predicted.text
        assert (await client.get("/health/live")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/predict", {"text": "Loved it."}),
        ("POST", "/v2/models/sentiment-lstm/infer", {"inputs": []}),
        ("GET", "/health/ready", None),
        ("GET", "/metrics", None),
    ],
)
async def test_while_closing_every_request_gets_503_retry_after_and_close(method, path, body):
    async with serve(make_settings()) as (app, client):
        app.state.lifecycle.phase = Phase.CLOSING
        response = await client.request(method, path, json=body)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.headers["connection"] == "close"
        assert "x-request-id" in response.headers
        if not path.startswith("/v2"):
            assert response.json()["error"]["code"] == "shutting_down"
        app.state.lifecycle.phase = Phase.SERVING
        rejected = app.state.metrics.render().decode()
        # refused before any model is chosen: the model label is empty
        assert 'sentiment_rejected_total{model="",reason="shutting_down"} 1.0' in rejected


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux listeners")


@linux_only
def test_a_refusing_listener_keeps_its_queue_and_drops_new_connections():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        queued = socket.create_connection(("127.0.0.1", port), timeout=5)
        queued.sendall(b"GET / HTTP/1.1\r\n\r\n")
        deadline = time.monotonic() + 5
        while graceful.accept_queue_length(listener) != 1:
            assert time.monotonic() < deadline, "the connection never reached the queue"
            time.sleep(0.01)
        assert graceful.refuse_new_connections(listener)
        late = socket.socket()
        late.settimeout(0.3)
        with pytest.raises(TimeoutError):  # its SYN is dropped: no connection, no reset
            late.connect(("127.0.0.1", port))
        late.close()
        accepted, _ = listener.accept()  # the queued one is still there, request and all
        assert accepted.recv(64).startswith(b"GET / HTTP/1.1")
        accepted.sendall(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
        assert queued.recv(64).startswith(b"HTTP/1.1 503")
        assert graceful.accept_queue_length(listener) == 0
        accepted.close()
        queued.close()
    with pytest.raises(ConnectionRefusedError):  # closed: refused, as for any closed port
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_listener_tools_decline_what_they_cannot_do():
    with socket.socket(socket.AF_UNIX) as unix:
        assert graceful.refuse_new_connections(unix) is False
        assert graceful.accept_queue_length(unix) is None


@pytest.mark.parametrize(
    ("sig", "started", "skips_lame_duck"),
    [
        (signal.SIGTERM, True, False),
        (signal.SIGINT, True, True),
        (signal.SIGTERM, False, True),  # while the models load: no one routes to it yet
    ],
)
def test_the_lame_duck_is_for_a_server_that_listened_and_a_term_signal(
    sig, started, skips_lame_duck
):
    from service.http.lifecycle import Lifecycle

    server = graceful.GracefulServer(uvicorn.Config(app=None), Lifecycle(), lame_duck_s=5)
    server.started = started
    server.handle_exit(sig, None)
    assert server._hurry is skips_lame_duck
    assert server.lifecycle.phase is Phase.LAME_DUCK  # /health/ready says so either way
