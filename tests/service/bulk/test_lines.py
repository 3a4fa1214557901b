"""Input lines are bounded: a line far over the text limit becomes a bad row without being
held whole (memory stays flat), a quote never closed stops the run once its field passes
the limit rather than at the end of the input, and a UTF-16 or UTF-32 file is refused
with what to do (not read as garbled column names)."""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import os
import subprocess
import threading

import pytest

from service.bulk.formats import UsageError
from service.bulk.lines import MIN_LINE_LIMIT, BoundedLines, Overlong, line_limit
from tests.service.bulk.test_formats import read_csv, score
from tests.service.bulk.test_processes import command, environment
from tests.support.servers import NEGATIVE_TEXT, POSITIVE_TEXT, PROJECT_ROOT

HUGE = MIN_LINE_LIMIT + 10  # over the limit at the default SENTIMENT_MAX_TEXT_CHARS
TOO_LONG = f"has more than {MIN_LINE_LIMIT:,} characters"


def test_the_limit_follows_the_text_limit():
    assert line_limit(20_000) == MIN_LINE_LIMIT
    assert line_limit(1_000_000) == 4_000_000


def lines_of(text: str, limit: int, newline: str | None = "") -> tuple[list[str], BoundedLines]:
    bounded = BoundedLines(io.TextIOWrapper(io.BytesIO(text.encode()), newline=newline), limit)
    return list(bounded), bounded


def test_long_lines_are_dropped_and_counted():
    got, bounded = lines_of("short\r\n" + "y" * 25 + "\r\n" + "z" * 10 + "\nend", limit=10)
    assert got == ["short\r\n", "\n", "\n", "end"]
    assert isinstance(got[1], Overlong) and not isinstance(got[0], Overlong)
    assert bounded.overlong == [2, 3]  # (11 characters with its "\n": over 10)
    assert bounded.covers(2, 2) == 2 and bounded.covers(4, 4) is None


def test_a_dropped_line_keeps_the_quoting_as_it_was():
    """An odd number of quotes in the dropped line: a quote stands for them."""
    got, _ = lines_of('1,"opens' + "x" * 30 + '\nstill quoted"\n', limit=20)
    assert got == ['"\n', 'still quoted"\n']


def test_huge_csv_and_jsonl_lines_are_bad_rows(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(
        f'id,text\na,{POSITIVE_TEXT}\nb,{"x" * HUGE}\nc,"{"y" * HUGE}"\nd,{NEGATIVE_TEXT}\n'
    )
    out = tmp_path / "out.csv"
    assert score(tmp_path, str(src), "-o", str(out), "--max-errors", "2") == 0
    records = read_csv(out)
    assert [(r["id"], r["label"]) for r in records] == [
        ("a", "positive"),
        ("", ""),
        ("", ""),
        ("d", "negative"),
    ]
    assert records[1]["error"].startswith(f"line 3 {TOO_LONG}")
    assert records[2]["error"].startswith(f"line 4 {TOO_LONG}")
    src = tmp_path / "in.jsonl"
    rows = [{"id": "a", "text": POSITIVE_TEXT}, {"id": "b", "text": "x" * HUGE}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    assert score(tmp_path, str(src), "-o", str(out), "--max-errors", "1") == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["label"] for s in scored] == ["positive", None]
    assert scored[1]["error"].startswith(f"line 2 {TOO_LONG}")


def peak_rss_mb(src, tmp_path) -> float:
    process = subprocess.Popen(
        command(str(src), "-o", str(tmp_path / "out.csv"), "-q", "--max-errors", "9"),
        cwd=PROJECT_ROOT,
        env=environment(),
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0
    return usage.ru_maxrss / 1024  # KiB on Linux


def test_a_huge_line_is_not_held_in_memory(tmp_path):
    small = tmp_path / "small.csv"
    small.write_text(f"text\n{POSITIVE_TEXT}\n")
    huge = tmp_path / "huge.csv"
    huge.write_text(f"text\n{POSITIVE_TEXT}\n{'x' * 60_000_000}\n")  # 60 MB in one line
    before, after = peak_rss_mb(small, tmp_path), peak_rss_mb(huge, tmp_path)
    # Held whole, the line alone would take 60 MB (and the CSV field 240 MB more).
    assert after - before < 30, f"peak RSS {before:.0f} MB, {after:.0f} MB with the huge line"


def test_a_quote_never_closed_stops_at_the_limit_not_the_end():
    """The input never ends (stdin stays open): the run must stop on its own, exit 2."""
    process = subprocess.Popen(
        command("-", "-q"),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=PROJECT_ROOT,
        env=environment(),
    )

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            process.stdin.write(b'id,text\n1,"never closed\n')
            process.stdin.write(b"2,an ordinary review line\n" * (2 * MIN_LINE_LIMIT // 26))
            process.stdin.flush()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        assert process.wait(timeout=60) == 2
    finally:
        process.kill()
        process.wait(timeout=10)
        with contextlib.suppress(OSError):
            process.stdin.close()
    said = process.stderr.read().decode().splitlines()
    assert said == [
        "sentiment-score: error: standard input: the row at line 2 has a field of more than "
        f"{MIN_LINE_LIMIT:,} characters (4 x SENTIMENT_MAX_TEXT_CHARS, at least 1 Mi): most "
        'likely a quote (") never closed; close it, or double it ("")'
    ]


@pytest.mark.parametrize(
    ("encoding", "name"),
    [("utf-16", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32", "UTF-32")],
)
@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_utf16_and_utf32_files_are_refused(tmp_path, encoding, name, suffix):
    src = tmp_path / f"in.{suffix}"
    content = "id,text\n1,fine\n" if suffix == "csv" else '{"id": 1, "text": "fine"}\n'
    bom = codecs.BOM_UTF16_BE if encoding == "utf-16-be" else b""
    src.write_bytes(bom + content.encode(encoding))
    with pytest.raises(UsageError, match=f"in.{suffix} is {name} .* it must be UTF-8"):
        score(tmp_path, str(src), "-o", str(tmp_path / "out.csv"))
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_utf16_and_utf32_without_a_byte_order_mark_are_refused_too(tmp_path, encoding):
    src = tmp_path / "in.csv"
    src.write_bytes("id,text\n1,fine\n".encode(encoding))
    with pytest.raises(UsageError, match=r"in\.csv looks like UTF-16 or UTF-32 without a byte"):
        score(tmp_path, str(src), "-o", str(tmp_path / "out.csv"))
