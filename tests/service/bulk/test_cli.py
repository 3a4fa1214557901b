"""The command's own edges: ``python -m service.bulk.cli`` runs it, an invalid SENTIMENT_*
setting is one line and exit 2 (not a traceback and exit 1, which means bad rows), and a
run interrupted while writing to standard output says how many rows it had written there
(not "no output written": they are out, and incomplete)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from service.bulk.formats import UsageError
from tests.service.bulk.test_formats import score
from tests.service.bulk.test_processes import (
    TEXTS,
    _sigint_as_at_a_terminal,
    command,
    csv_bytes,
    environment,
    parse_csv,
    run,
)
from tests.support.servers import PROJECT_ROOT


def test_python_m_service_bulk_cli_runs_the_command():
    done = subprocess.run(
        [sys.executable, "-m", "service.bulk.cli", "-", "-q"],
        input=csv_bytes(TEXTS),
        capture_output=True,
        cwd=PROJECT_ROOT,
        env=environment(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert [r["label"] for r in parse_csv(done.stdout)][:2] == ["positive", "negative"]


def test_an_invalid_setting_exits_2_with_one_line(tmp_path, monkeypatch):
    done = run("-", stdin=csv_bytes(TEXTS), SENTIMENT_MAX_TEXT_CHARS="abc")
    assert done.returncode == 2
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "sentiment-score: error: invalid settings: SENTIMENT_MAX_TEXT_CHARS: Input should be"
    )
    monkeypatch.setenv("SENTIMENT_MAX_TEXT_CHARS", "0")
    with pytest.raises(UsageError, match="SENTIMENT_MAX_TEXT_CHARS: Input should be greater"):
        score(tmp_path, "-")


def test_an_interrupted_run_to_stdout_says_what_it_wrote():
    process = subprocess.Popen(
        command("-", "--batch-size", "2"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=PROJECT_ROOT,
        env=environment(),
        preexec_fn=_sigint_as_at_a_terminal,  # (as in test_processes: Ctrl-C at a terminal)
    )
    out = bytearray()
    reader = threading.Thread(target=read_all, args=(process.stdout, out), daemon=True)
    reader.start()
    try:
        process.stdin.write(csv_bytes(TEXTS * 4))  # stdin stays open: the run waits for more
        process.stdin.flush()
        deadline = time.monotonic() + 60
        while out.count(b"\n") < 3:  # the header and a chunk or more
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
        reader.join(10)
    finally:
        process.kill()
        process.wait(timeout=10)
    said = process.stderr.read().decode()
    found = re.search(r"interrupted after (\d+) rows? had been written to standard output", said)
    assert found, said
    assert "that output is incomplete" in said and "no output written" not in said
    assert 2 <= int(found.group(1)) <= len(parse_csv(bytes(out)))


def read_all(stream, into: bytearray) -> None:
    while chunk := stream.read1(65536):  # (as it comes: not only at the end)
        into.extend(chunk)
