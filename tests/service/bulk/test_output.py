"""Where the output goes, and when it cannot: a symbolic link stays a link (its target is
replaced), a FIFO is written through (never replaced by a file), a directory is refused
before the model loads, and a write that fails (disk full, file too large) is one line on
stderr and exit 2, with no temporary file left. (Devices are tested through a FIFO and
standard output only: a regression must never be able to replace /dev/null or /dev/full.)
"""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import threading

import pytest

from service.bulk.formats import UsageError
from service.bulk.output import OutputError
from tests.service.bulk.test_formats import read_csv, score
from tests.service.bulk.test_processes import TEXTS, command, csv_bytes, environment, run
from tests.support.servers import PROJECT_ROOT


def write_input(tmp_path, rows: int = 5):
    src = tmp_path / "in.csv"
    src.write_bytes(csv_bytes((TEXTS * rows)[:rows]))
    return src


def test_a_symlink_stays_a_link_and_its_target_is_written(tmp_path):
    target = tmp_path / "data" / "scored.csv"
    target.parent.mkdir()
    target.write_text("old contents\n")
    link = tmp_path / "latest.csv"
    link.symlink_to(target)
    assert score(tmp_path, str(write_input(tmp_path)), "-o", str(link)) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(read_csv(target)) == 5
    assert sorted(p.name for p in target.parent.iterdir()) == ["scored.csv"]  # no temporary


def read_fifo(path) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []

    def reader() -> None:
        with open(path, "rb") as fifo:  # (blocks until a writer opens it)
            got.append(fifo.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    return thread, got


def release(path, thread: threading.Thread) -> None:
    """Unblock a reader still waiting for a writer (the run never opened the FIFO)."""
    thread.join(5)
    if thread.is_alive():
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)


@pytest.mark.parametrize("through_a_link", [False, True], ids=["fifo", "link to a fifo"])
def test_a_fifo_is_written_through_not_replaced(tmp_path, through_a_link):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    out = tmp_path / "out.csv"
    if through_a_link:
        out.symlink_to(fifo)
    thread, got = read_fifo(fifo)
    try:
        status = score(
            tmp_path, str(write_input(tmp_path)), "-o", str(out if through_a_link else fifo)
        )
    finally:
        release(fifo, thread)
    assert status == 0
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert out.is_symlink() == through_a_link
    assert got and got[0].decode().startswith("row,label,p_negative,p_positive,")
    assert len(got[0].decode().splitlines()) == 6


def test_a_directory_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    (tmp_path / "out.csv").mkdir()

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr("service.bulk.local.LocalScorer.__init__", no_model)
    src = str(write_input(tmp_path))
    with pytest.raises(OutputError, match=r"the output .*out\.csv is a directory"):
        score(tmp_path, src, "-o", str(tmp_path / "out.csv"))
    with pytest.raises(OutputError, match=r"no directory .*missing"):
        score(tmp_path, src, "-o", str(tmp_path / "missing" / "out.csv"))


def test_a_directory_as_output_exits_2_with_one_line(tmp_path):
    (tmp_path / "out.csv").mkdir()
    done = run(str(write_input(tmp_path)), "-o", str(tmp_path / "out.csv"))
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        f"sentiment-score: error: the output {tmp_path / 'out.csv'} is a directory: "
        "give a file name"
    ]


def test_a_full_disk_on_standard_output_exits_2_with_one_line(tmp_path):
    """/dev/full opened here and given as stdout: the run cannot replace the device."""
    for fmt in ("csv", "jsonl", "parquet"):
        with open("/dev/full", "wb") as full:
            done = subprocess.run(
                command(str(write_input(tmp_path)), "--output-format", fmt, "-q"),
                stdout=full,
                stderr=subprocess.PIPE,
                cwd=PROJECT_ROOT,
                env=environment(),
                timeout=120,
                check=False,
            )
        assert done.returncode == 2, fmt
        assert done.stderr.decode().splitlines() == [
            "sentiment-score: error: cannot write standard output: No space left on device"
        ], fmt


def _small_files() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_a_file_too_large_exits_2_and_leaves_no_temporary_file(tmp_path):
    src = write_input(tmp_path, rows=2000)  # ~200 KB of output, over the 64 KiB limit
    out = tmp_path / "out" / "scored.csv"
    out.parent.mkdir()
    done = subprocess.run(
        command(str(src), "-o", str(out), "-q", "--max-errors", "0"),
        capture_output=True,
        cwd=PROJECT_ROOT,
        env=environment(),
        timeout=120,
        check=False,
        preexec_fn=_small_files,
    )
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        f"sentiment-score: error: cannot write {out}: File too large"
    ]
    assert list(out.parent.iterdir()) == []


def test_a_failed_write_is_a_usage_error():
    assert issubclass(OutputError, UsageError)  # exit 2, as the README says
