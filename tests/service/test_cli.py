"""``sentiment-serve`` and its settings; plus the few checks that need a real HTTP server.

The server tests start uvicorn through the CLI in a subprocess on 127.0.0.1 with a free
port, with timeouts everywhere, and always kill it in ``finally``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

import service.cli
import service.http.app
from service.http.graceful import DRAIN_GRACE_S
from service.settings import Settings
from tests.support.servers import Server, raw_http
from tests.support.settings import refused

CLI = Path(sys.executable).parent / "sentiment-serve"


# -- the CLI and settings (no server) ------------------------------------------------------
def test_help_in_process(capsys):
    with pytest.raises(SystemExit) as exit_info:
        service.cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--model-dir", "SENTIMENT_PORT", "SENTIMENT_MODEL_DIR"):
        assert flag in out


def test_console_script_help():
    assert CLI.exists(), f"{CLI} not installed (pip install -e .)"
    result = subprocess.run(
        [str(CLI), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "sentiment-serve" in result.stdout
    assert "--port" in result.stdout


def test_settings_read_the_environment(monkeypatch, tmp_path):
    env = {
        "SENTIMENT_HOST": "0.0.0.0",
        "SENTIMENT_PORT": "9123",
        "SENTIMENT_LOG_JSON": "false",
        "SENTIMENT_MODEL_DIR": str(tmp_path),
        "SENTIMENT_MODEL_VARIANT": "int8",
        "SENTIMENT_MAX_BATCH_SIZE": "32",
        "SENTIMENT_MAX_WAIT_MS": "5.5",
        "SENTIMENT_QUEUE_SIZE": "100",
        "SENTIMENT_REQUEST_TIMEOUT_S": "2.5",
        "SENTIMENT_INFERENCE_WORKERS": "3",
        "SENTIMENT_MAX_TEXTS_PER_REQUEST": "8",
        "SENTIMENT_MAX_TEXT_CHARS": "1000",
        "SENTIMENT_MAX_BODY_BYTES": "65536",
        "SENTIMENT_ADMIN_TOKEN": "s3cret",
        "SENTIMENT_CORS_ORIGINS": '["https://a.example"]',
        "SENTIMENT_DRAIN_TIMEOUT_S": "7",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert (s.host, s.port, s.log_json) == ("0.0.0.0", 9123, False)
    assert s.model_dir == tmp_path
    assert s.resolved_model_dir() == tmp_path
    assert s.model_variant == "int8"
    assert (s.max_batch_size, s.max_wait_ms, s.queue_size) == (32, 5.5, 100)
    assert (s.request_timeout_s, s.inference_workers) == (2.5, 3)
    assert (s.max_texts_per_request, s.max_text_chars, s.max_body_bytes) == (8, 1000, 65536)
    assert s.admin_token is not None and s.admin_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
    assert s.cors_origins == ["https://a.example"]
    assert s.drain_timeout_s == 7.0


def test_settings_defaults_without_environment():
    s = Settings()
    assert s.port == 8000 and s.host == "127.0.0.1"
    assert s.admin_token is None
    assert s.model_dir is None


@pytest.mark.parametrize(
    "key, value",
    [
        ("SENTIMENT_PORT", "0"),
        ("SENTIMENT_PORT", "http"),
        ("SENTIMENT_MODEL_VARIANT", "fp16"),
        ("SENTIMENT_MAX_BATCH_SIZE", "0"),
        ("SENTIMENT_REQUEST_TIMEOUT_S", "0"),
        ("SENTIMENT_MAX_BODY_BYTES", "10"),
    ],
)
def test_invalid_environment_is_refused(monkeypatch, key, value):
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("SENTIMENT_CORS_ORIGINS", "[not json", "SENTIMENT_CORS_ORIGINS: Expecting value"),
        ("SENTIMENT_LOG_LEVEL", "bogus", "SENTIMENT_LOG_LEVEL: 'bogus' is not one of critical"),
        ("SENTIMENT_LOG_JSON", "maybe", "SENTIMENT_LOG_JSON: 'maybe' is not auto, true or false"),
        ("SENTIMENT_API_KEYS_FILE", "/no/such/keys", "SENTIMENT_API_KEYS_FILE: /no/such/keys is"),
        ("SENTIMENT_HOST", "999.1.1.1", "SENTIMENT_HOST '999.1.1.1' is not an address"),
        ("SENTIMENT_QUEUE_SIZE", "2", "error: invalid settings: SENTIMENT_QUEUE_SIZE (2) must"),
    ],
)
def test_an_unusable_setting_stops_at_once_with_one_line(monkeypatch, capsys, key, value, message):
    """Before, the first three raised a traceback (or, the log level, respawned workers
    for ever), the keys file started a server that answered 401 to everything, and the
    host exited 3 after the model had loaded."""
    err = refused(monkeypatch, capsys, **{key: value})  # exit 2, one line
    assert message in err, err


def test_a_default_model_that_is_not_served_stops_at_once(monkeypatch, capsys):
    """A typo here once sent every request that names no model to another model, silently."""
    err = refused(monkeypatch, capsys, SENTIMENT_DEFAULT_MODEL="sentiment-lsmt")
    assert "SENTIMENT_DEFAULT_MODEL 'sentiment-lsmt' is not served" in err, err
    assert "sentiment-general, sentiment-lstm" in err and len(err.splitlines()) == 1


def test_without_its_default_the_first_model_listed_is_the_default(monkeypatch):
    """The built-in default (not set by hand) falls back to the first of SENTIMENT_MODELS,
    in the order given, not in alphabetical order."""
    monkeypatch.setenv("SENTIMENT_MODELS", "sentiment-lstm")
    settings = service.cli.checked_settings({})
    assert settings.default_of(settings.served_models()) == "sentiment-lstm"
    names = ["sentiment-lstm", "zz-other"]
    assert settings.default_of(names) == "sentiment-lstm"
    assert settings.default_of(["zz-other", "sentiment-lstm"]) == "zz-other"


def test_lists_and_words_read_as_people_write_them(monkeypatch):
    monkeypatch.setenv("SENTIMENT_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("SENTIMENT_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("SENTIMENT_LOG_JSON", "off")
    s = Settings()
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert (s.log_level, s.log_json) == ("debug", False)
    monkeypatch.setenv("SENTIMENT_CORS_ORIGINS", '["https://c.example"]')  # JSON, as before
    assert Settings().cors_origins == ["https://c.example"]


def test_flags_override_the_environment(monkeypatch, bundle_dir):
    monkeypatch.setenv("SENTIMENT_PORT", "1234")
    monkeypatch.setenv("SENTIMENT_HOST", "0.0.0.0")
    monkeypatch.setenv("SENTIMENT_DRAIN_TIMEOUT_S", "7")
    monkeypatch.setenv("SENTIMENT_LAME_DUCK_S", "2.5")
    calls = []
    monkeypatch.setattr(
        service.cli, "run_server", lambda app, lame, **kw: calls.append((app, lame, kw))
    )
    monkeypatch.setattr(service.http.app, "configure_logging", lambda *a, **kw: None)
    service.cli.main(["--port", "9999", "--model-dir", str(bundle_dir)])
    ((app, lame_duck_s, kwargs),) = calls
    assert lame_duck_s == 2.5
    assert kwargs["port"] == 9999  # the flag wins over SENTIMENT_PORT
    assert kwargs["host"] == "0.0.0.0"  # unflagged: from the environment
    assert kwargs["timeout_graceful_shutdown"] == 7.0 + DRAIN_GRACE_S  # then uvicorn cancels
    assert app.state.settings.model_dir == bundle_dir
    assert app.state.settings.port == 9999


# -- a real server -------------------------------------------------------------------------
@pytest.fixture
def server(tmp_path) -> Iterator[Server]:
    srv = Server(tmp_path)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


def test_server_serves_and_logs_json_lines(server, manifest):
    response = httpx.post(
        f"{server.base}/predict",
        json={"texts": ["a wonderful film", "a dreadful film"]},
        headers={"X-Request-ID": "cli-test-1"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "cli-test-1"
    assert response.json()["model"]["version"] == manifest["version"]
    assert "server" not in response.headers  # server_header=False
    deadline = time.monotonic() + 10
    while "cli-test-1" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [json.loads(line) for line in server.output().splitlines() if "cli-test-1" in line]
    assert lines, server.output()
    access = lines[0]
    assert access["logger"] == "access" and access["msg"].startswith("POST /predict 200 ")
    assert (access["path"], access["status"], access["texts"]) == ("/predict", 200, 2)
    assert access["method"] == "POST" and access["ms"] > 0
    assert (access["model"], access["version"]) == (manifest["name"], manifest["version"])


def test_declared_oversized_body_gets_413_before_it_is_sent(server):
    """The server answers 413 from the headers alone: the 50 MB body is never sent."""
    head = (
        b"POST /predict HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: 50000000\r\n"
        b"\r\n"
        b'{"text": "'
    )
    reply = raw_http(server.port, head)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"payload_too_large" in reply
    assert b"connection: close" in reply.lower()
    # the server is fine afterwards
    assert httpx.get(f"{server.base}/health/ready", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("path", "framing"),
    [
        ("/predict", b"Content-Length: 100\r\n"),  # the fast path reads this body
        ("/tokenize", b"Content-Length: 100\r\n"),  # a FastAPI route reads this one
        ("/v2/models/sentiment-lstm/infer", b"Content-Length: 100\r\n"),
        ("/predict", b"Transfer-Encoding: chunked\r\n"),
    ],
)
def test_a_body_that_stops_arriving_gets_408_not_a_hang(tmp_path, path, framing):
    """Before, uvicorn waited for the missing bytes as long as the client kept the line open."""
    chunked = b"chunked" in framing
    part = b'{"text": "'
    body = b"%x\r\n%s\r\n" % (len(part), part) if chunked else part
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" % path.encode()
    with Server(tmp_path, SENTIMENT_BODY_TIMEOUT_S="0.5") as server:
        started = time.monotonic()
        reply = raw_http(server.port, head + framing + b"\r\n" + body, timeout_s=20)
        assert time.monotonic() - started < 10
        assert reply.startswith(b"HTTP/1.1 408"), reply[:300]
        assert b"connection: close" in reply.lower()
        assert b"stopped arriving: 10 bytes received" in reply
        assert httpx.get(f"{server.base}/health/ready", timeout=10).status_code == 200


def test_sigterm_finishes_in_flight_requests_then_exits(server):
    server.gate.touch()  # the next inference call waits at the gate
    result: dict = {}

    def call() -> None:
        try:
            result["response"] = httpx.post(
                f"{server.base}/predict", json={"text": "held in flight"}, timeout=60
            )
        except Exception as exc:  # reported below
            result["error"] = exc

    client = threading.Thread(target=call)
    client.start()
    try:
        server.wait_for_inference()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)  # (not a timing assertion) give uvicorn a moment to begin shutdown
        assert server.process.poll() is None, "exited with a request still in flight"
    finally:
        server.gate.unlink(missing_ok=True)  # let the held request finish
        client.join(timeout=60)
    assert "error" not in result, result.get("error")
    assert result["response"].status_code == 200, result["response"].text
    # uvicorn re-raises SIGTERM once shut down, so the exit status is "killed by SIGTERM"
    # (143 in a container), after a complete, clean shutdown:
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM), server.output()
    assert "Application shutdown complete" in server.output()
    assert '"level": "error"' not in server.output(), server.output()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.base}/health/live", timeout=2)


def test_a_drain_that_runs_out_of_time_answers_503_not_500(tmp_path):
    """Texts still queued at SENTIMENT_DRAIN_TIMEOUT_S get 503 "shutting down" at once, and
    the batch still running when uvicorn cancels it (the grace after) a 503 as well: before,
    uvicorn's cancellation answered every one of them with a bare 500."""
    env = {"SENTIMENT_DRAIN_TIMEOUT_S": "0.3", "SENTIMENT_INFERENCE_WORKERS": "1"}
    with Server(tmp_path, **env) as server:
        server.gate.touch()  # the first batch waits at the gate; the others queue behind it
        answers: list = []

        def call(i: int) -> None:
            texts = [f"review {i}.{k}: held while the server stops" for k in range(8)]
            try:
                answers.append(
                    httpx.post(f"{server.base}/predict", json={"texts": texts}, timeout=60)
                )
            except Exception as exc:  # reported below
                answers.append(exc)

        clients = [threading.Thread(target=call, args=(i,)) for i in range(6)]
        for client in clients:
            client.start()
            time.sleep(0.05)
        try:
            server.wait_for_inference()
            server.process.send_signal(signal.SIGTERM)
            for client in clients:
                client.join(timeout=30)
        finally:
            server.gate.unlink(missing_ok=True)  # let the held inference thread end
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM), server.output()
    assert len(answers) == 6 and not [a for a in answers if isinstance(a, Exception)], answers
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [503] * 6, [(a.status_code, a.text[:80]) for a in answers]
    for answer in answers:
        assert answer.json()["error"]["code"] == "shutting_down"
        assert answer.headers["retry-after"] == "1"
    assert "drain timed out: queued texts answered 503" in server.output()


def test_queue_must_hold_the_largest_request():
    with pytest.raises(ValueError, match="SENTIMENT_QUEUE_SIZE"):
        Settings(queue_size=10, max_texts_per_request=11)


def test_several_worker_processes_serve_and_stop_on_sigterm(tmp_path):
    server = Server(tmp_path, SENTIMENT_WORKERS="2")
    try:
        server.start()
        for _ in range(4):
            response = httpx.post(f"{server.base}/predict", json={"text": "Loved it."}, timeout=10)
            assert response.status_code == 200, response.text
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        server.stop()


def test_worker_processes_get_the_versions_promoted_at_start(monkeypatch):
    """With several workers, sentiment-serve reads each PROMOTED once and hands the
    versions on, so a worker uvicorn restarts later serves what its siblings serve."""
    started = []
    monkeypatch.setattr(service.cli.uvicorn, "run", lambda *a, **kw: started.append(kw))
    monkeypatch.setenv("SENTIMENT_PINNED_VERSIONS", "{}")  # main() sets these two:
    monkeypatch.setenv("SENTIMENT_WORKERS", "1")  # they are restored after the test
    service.cli.main(["--workers", "2"])
    assert started and started[0]["workers"] == 2
    models = Settings().models_root
    promoted = {p.parent.name: p.read_text().strip() for p in models.glob("*/PROMOTED")}
    assert json.loads(service.cli.os.environ["SENTIMENT_PINNED_VERSIONS"]) == promoted
    assert promoted == {"sentiment-general": "g16", "sentiment-lstm": "n2"}
