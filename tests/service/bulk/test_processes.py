"""``sentiment-score`` as a process: standard input and output, an interrupted run leaves
no output file, the progress bar on a terminal, memory that does not grow with the input,
and ``--server`` against a live service (its 503s retried, its refusals become bad rows).

Each runs ``python -m service.bulk`` from this checkout, with timeouts everywhere.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from tests.support.servers import BINARY_MODEL, NEGATIVE_TEXT, POSITIVE_TEXT, PROJECT_ROOT, Server

TEXTS = [
    POSITIVE_TEXT,
    NEGATIVE_TEXT,
    "It was fine, I guess.",
    "Boring",
    "A joy from start to end.",
]


def command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "service.bulk", *argv]


def environment(**settings: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMENT_")}
    # The binary test bundle by default, as the test servers serve (not sentiment-general).
    return {**env, "SENTIMENT_DEFAULT_MODEL": BINARY_MODEL, **settings}


def run(*argv: str, stdin: bytes = b"", timeout: float = 120, **settings: str):
    return subprocess.run(
        command(*argv),
        input=stdin,
        capture_output=True,
        cwd=PROJECT_ROOT,
        env=environment(**settings),
        timeout=timeout,
        check=False,
    )


def csv_bytes(texts: list[str], header: str = "text") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([header])
    writer.writerows([t] for t in texts)
    return out.getvalue().encode()


def parse_csv(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode())))


@pytest.fixture(scope="module")
def local_scores(tmp_path_factory) -> dict[str, dict]:
    """TEXTS scored in process (the reference for the --server runs), by text."""
    done = run("-", stdin=csv_bytes(TEXTS))
    assert done.returncode == 0, done.stderr.decode()
    return dict(zip(TEXTS, parse_csv(done.stdout), strict=True))


# -- standard input and output -------------------------------------------------------------
def test_stdin_to_stdout_csv(local_scores):
    done = run("-", stdin=csv_bytes(TEXTS))
    assert done.returncode == 0, done.stderr.decode()
    records = parse_csv(done.stdout)
    assert [r["row"] for r in records] == ["1", "2", "3", "4", "5"]
    assert [r["label"] for r in records[:2]] == ["positive", "negative"]
    summary = done.stderr.decode()
    assert "5 rows (0 not scored)" in summary and "rows/s" in summary
    assert "\r" not in summary  # no progress bar: stderr is not a terminal


def test_a_reader_that_leaves_early_stops_it_quietly(tmp_path):
    """``sentiment-score big.csv | head -2``: exit 141 (SIGPIPE's), no BrokenPipeError."""
    src = tmp_path / "in.csv"
    src.write_bytes(csv_bytes(TEXTS * 4000))
    shell = f'{" ".join(command(str(src), "-q"))} | head -2; echo "status ${{PIPESTATUS[0]}}"'
    done = subprocess.run(
        ["bash", "-c", shell], capture_output=True, cwd=PROJECT_ROOT, env=environment(),
        timeout=120, check=False,
    )  # fmt: skip
    lines = done.stdout.decode().splitlines()
    assert lines[0].startswith("row,label") and lines[-1] == "status 141", lines
    assert "Traceback" not in done.stderr.decode() and "BrokenPipe" not in done.stderr.decode()


def test_stdin_jsonl_to_stdout_parquet():
    lines = "".join(json.dumps({"id": f"k{k}", "text": t}) + "\n" for k, t in enumerate(TEXTS))
    done = run("-", "--input-format", "jsonl", "--output-format", "parquet", stdin=lines.encode())
    assert done.returncode == 0, done.stderr.decode()
    table = pq.read_table(io.BytesIO(done.stdout)).to_pylist()
    assert [r["id"] for r in table] == [f"k{k}" for k in range(len(TEXTS))]
    assert table[0]["label"] == "positive"


# -- interrupted runs ------------------------------------------------------------------------------
def _sigint_as_at_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -signal.SIGKILL)],
    ids=["SIGTERM", "SIGINT", "SIGKILL"],
)
def test_an_interrupted_run_leaves_no_output_file(tmp_path, signum, status):
    """Rows keep coming on stdin; the run is stopped mid-way: no output file appears
    (and after SIGTERM or Ctrl-C, no temporary file is left either)."""
    out = tmp_path / "scored.csv"
    process = subprocess.Popen(
        command("-", "-o", str(out), "--batch-size", "2"),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=PROJECT_ROOT,
        env=environment(),
        # Ctrl-C as at a terminal's foreground process: a test suite started in the
        # background (`make test &`) runs with SIGINT ignored, and children inherit that.
        preexec_fn=_sigint_as_at_a_terminal,
    )
    try:
        process.stdin.write(csv_bytes(TEXTS * 4))  # several chunks: some scored and written
        process.stdin.flush()
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".scored.csv.*.partial")):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the run never started writing"
            time.sleep(0.05)
        time.sleep(0.3)  # scoring what it has read; stdin stays open
        process.send_signal(signum)
        assert process.wait(timeout=30) == status
    finally:
        with contextlib.suppress(OSError):
            process.stdin.close()
        process.kill()
        process.wait(timeout=10)
    assert not out.exists()
    left = [p.name for p in tmp_path.iterdir()]
    if signum == signal.SIGKILL:  # nothing can clean up after SIGKILL: hidden, never `out`
        assert all(name.startswith(".scored.csv.") for name in left), left
    else:
        assert left == [], left
        assert "no output written" in process.stderr.read().decode()


# -- the progress bar -------------------------------------------------------------------------------
def test_progress_bar_when_stderr_is_a_terminal(tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(csv_bytes(TEXTS * 20))
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            command(str(src), "-o", str(tmp_path / "out.csv"), "--batch-size", "5"),
            stderr=follower,
            cwd=PROJECT_ROOT,
            env=environment(),
        )
        os.close(follower)
        seen = b""
        with contextlib.suppress(OSError):  # EIO once the process has closed the terminal
            while chunk := os.read(leader, 4096):
                seen += chunk
        assert process.wait(timeout=120) == 0, seen.decode()
    finally:
        os.close(leader)
    text = seen.decode()
    assert "\r[" in text and "rows/s" in text and "ETA" in text, text
    assert "100 rows (0 not scored)" in text


# -- bounded memory ------------------------------------------------------------------------------------
def peak_rss_mb(rows: int, tmp_path: Path) -> float:
    """sentiment-score's peak RSS over ``rows`` rows streamed to it (input and output
    files never held: stdin, and an output file)."""
    process = subprocess.Popen(
        command("-", "-o", str(tmp_path / f"out-{rows}.csv"), "-q"),
        stdin=subprocess.PIPE,
        cwd=PROJECT_ROOT,
        env=environment(),
    )
    line = ("An honest, well acted film with a clever plot and a fine score. " * 3).encode()

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.write(b"text\n")
            for start in range(0, rows, 1000):
                process.stdin.write((line + b"\n") * min(1000, rows - start))
            process.stdin.close()

    writer = threading.Thread(target=feed)
    writer.start()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    writer.join(30)
    assert process.returncode == 0
    return usage.ru_maxrss / 1024  # KiB on Linux


def test_memory_does_not_grow_with_the_input(tmp_path):
    small = peak_rss_mb(2_000, tmp_path)
    large = peak_rss_mb(40_000, tmp_path)  # 20x the rows, 8 MB of text
    assert large - small < 25, f"peak RSS {small:.0f} MB for 2,000 rows, {large:.0f} for 40,000"


# -- --server --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    # The service's text limit is stricter than sentiment-score's own (20,000): texts
    # between the two are refused by the service (422) and must come back as bad rows.
    with Server(
        tmp_path_factory.mktemp("bulk-server"),
        SENTIMENT_MAX_TEXT_CHARS="60",
        SENTIMENT_LOG_LEVEL="warning",
    ) as live:
        yield live


def test_server_mode_equals_in_process(server, local_scores, manifest):
    done = run("-", "--server", server.base, "--batch-size", "2", stdin=csv_bytes(TEXTS))
    records = parse_csv(done.stdout)
    assert done.returncode == 1, done.stderr.decode()  # the two long texts: refused
    assert [r["row"] for r in records] == ["1", "2", "3", "4", "5"]
    for text, record in zip(TEXTS, records, strict=True):
        if len(text) > 60:
            assert record["label"] == "" and "the limit is 60" in record["error"], record
            continue
        want = local_scores[text]
        assert record["label"] == want["label"] and record["error"] == ""
        assert float(record["p_positive"]) == pytest.approx(float(want["p_positive"]), abs=1e-6)
        assert (record["model"], record["model_version"]) == (BINARY_MODEL, manifest["version"])
    assert "2 rows could not be scored" in done.stderr.decode()


def test_server_mode_unreachable():
    done = run("-", "--server", "http://127.0.0.1:9", stdin=csv_bytes(["x"]), timeout=60)
    assert done.returncode == 2
    assert "cannot reach 127.0.0.1:9" in done.stderr.decode()


def test_server_mode_names_a_model_it_does_not_serve(server):
    done = run("-", "--server", server.base, "--model", "nope", stdin=csv_bytes(["x"]))
    assert done.returncode == 2
    assert "has no model 'nope'" in done.stderr.decode()


def rejected(server: Server) -> float:
    metrics = httpx.get(f"{server.base}/metrics", timeout=10).text
    refused = re.compile(r'^sentiment_rejected_total\{model="[^"]*",reason="overloaded"\} (\S+)$')
    return sum(float(m[1]) for line in metrics.splitlines() if (m := refused.match(line)))


def test_server_mode_retries_on_503_retry_after(tmp_path, local_scores):
    """A service whose queue is full answers 503 + Retry-After; sentiment-score waits as
    told and retries, and every row is scored in the end."""
    texts = [t for t in TEXTS if len(t) <= 60] * 6
    src = tmp_path / "in.csv"
    src.write_bytes(csv_bytes(texts))
    with Server(
        tmp_path,
        SENTIMENT_QUEUE_SIZE="2",
        SENTIMENT_MAX_TEXTS_PER_REQUEST="2",
        SENTIMENT_MAX_BATCH_SIZE="2",
        SENTIMENT_INFERENCE_WORKERS="1",
        SENTIMENT_LOG_LEVEL="warning",
    ) as live:
        live.gate.touch()  # inference waits: the queue fills, later requests get 503
        process = subprocess.Popen(
            command(str(src), "--server", live.base, "--batch-size", "2", "--concurrency", "4"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=PROJECT_ROOT,
            env=environment(),
        )
        try:
            deadline = time.monotonic() + 60
            while rejected(live) < 1:
                assert process.poll() is None, process.communicate()[1].decode()
                assert time.monotonic() < deadline, "no request was refused"
                time.sleep(0.05)
        finally:
            live.gate.unlink()
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
        assert rejected(live) >= 1
    records = parse_csv(out)
    assert len(records) == len(texts)
    for text, record in zip(texts, records, strict=True):
        assert record["label"] == local_scores[text]["label"]
        assert float(record["p_positive"]) == pytest.approx(
            float(local_scores[text]["p_positive"]), abs=1e-6
        )
