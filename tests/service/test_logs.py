"""Logs: plain aligned lines on a terminal, JSON lines otherwise, the same fields in both."""

from __future__ import annotations

import json
import logging
import os
import pty
import select
import socket
import subprocess
import sys
import time

import httpx
import pytest

from service.logs import JsonFormatter, PlainFormatter, RefusedHeadFilter, speaker, use_json
from tests.support.servers import BINARY_MODEL, PROJECT_ROOT, free_port


def access_record(**extra) -> logging.LogRecord:
    record = logging.LogRecord("service.access", logging.INFO, __file__, 1, "%s %s %d %.1f ms",
                               ("POST", "/predict", 422, 1.25), None)  # fmt: skip
    fields = {"method": "POST", "path": "/predict", "status": 422, "ms": 1.25,
              "error": "invalid_input", "model": "m", "version": "v1", "request_id": "r1",
              "shown_in_message": ("method", "path", "status", "ms")}  # fmt: skip
    record.__dict__.update(fields | extra)
    return record


def test_plain_lines_are_aligned_and_carry_every_field_once():
    line = PlainFormatter().format(access_record())
    stamp, level, who, rest = line.split(maxsplit=3)
    assert stamp.endswith("Z") and level == "INFO" and who == "access"
    assert line.index(" access ") == len(stamp) + 1 + 7  # the level column is 7 wide
    assert rest == "POST /predict 422 1.2 ms  error=invalid_input model=m version=v1 request_id=r1"


def test_json_lines_carry_the_same_fields_and_no_colour_codes():
    record = access_record(color_message="\x1b[32mPOST\x1b[0m")
    entry = json.loads(JsonFormatter().format(record))
    assert entry["logger"] == "access" and entry["msg"] == "POST /predict 422 1.2 ms"
    for key, value in {"method": "POST", "path": "/predict", "status": 422, "ms": 1.25,
                       "error": "invalid_input", "model": "m", "version": "v1"}.items():  # fmt: skip
        assert entry[key] == value, key
    assert "color_message" not in entry and "shown_in_message" not in entry


def test_names_say_who_speaks():
    assert speaker("uvicorn.error") == "server" and speaker("service.model") == "model"


@pytest.mark.parametrize(
    ("setting", "terminal", "json_lines"),
    [("auto", True, False), ("auto", False, True), (True, True, True), (False, False, False)],
)
def test_json_unless_a_terminal_and_the_setting_wins(monkeypatch, setting, terminal, json_lines):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    assert use_json(setting) is json_lines


def read_until(fd: int, needle: str, timeout_s: float = 60) -> str:
    out, deadline = "", time.monotonic() + timeout_s
    while needle not in out and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                out += os.read(fd, 65536).decode(errors="replace")
            except OSError:
                break
    return out


def test_a_server_on_a_terminal_writes_plain_lines():
    """``sentiment-serve`` with stderr on a terminal (a pty), no log setting: plain lines,
    start-up lines as ``server``, the bundle's version, and an access line per request."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMENT_")}
    env["SENTIMENT_MODELS"] = BINARY_MODEL
    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "service.cli", "--port", str(port)]
    proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower)  # fmt: skip
    os.close(follower)
    try:
        out = read_until(leader, "Uvicorn running")
        httpx.post(f"http://127.0.0.1:{port}/predict", json={"text": "fine"}, timeout=30)
        httpx.post(f"http://127.0.0.1:{port}/predict", json={"txt": "fine"}, timeout=30)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"POST /predict HTTP/1.1\r\nContent-Length: x\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 400 ")
        out += read_until(leader, "refused 400")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        os.close(leader)
    lines = out.splitlines()
    assert not any(line.lstrip().startswith("{") for line in lines), out
    loaded = next(line for line in lines if "model bundle loaded" in line)
    assert " model " in loaded and "version=" in loaded and f"model={BINARY_MODEL}" in loaded
    assert any(" server " in line and "Uvicorn running" in line for line in lines), out
    ok = next(line for line in lines if "POST /predict 200" in line)
    assert f"model={BINARY_MODEL}" in ok and "request_id=" in ok
    refused = next(line for line in lines if "POST /predict 422" in line)
    assert "error=invalid_input" in refused
    head = next(line for line in lines if "refused 400" in line)  # the protocol's own line
    assert "Content-Length" in head and "error=bad_request" in head and " access " in head
    assert "Invalid HTTP request received." not in out  # uvicorn's, saying less
    assert "\x1b[" not in out  # no colour codes


def test_uvicorns_bare_warning_for_a_refused_head_is_dropped_and_nothing_else():
    """The protocol's own line names what the parser found; uvicorn's says nothing more."""

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.WARNING, __file__, 1, msg, None, None)

    keep = RefusedHeadFilter()
    assert not keep.filter(record("Invalid HTTP request received."))
    assert keep.filter(record("Exceeded concurrency limit."))
