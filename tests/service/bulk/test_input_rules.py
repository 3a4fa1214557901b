"""``sentiment-score``'s rules for awkward input and output, on tiny files: a quote never
closed stops the run (exit 2) instead of swallowing the rest of the file, every CSV line is
an output row (a blank one too), a row of an id-keyed table without its id is a bad row
(never keyed by a number another row may have as its id), ids that are not UTF-8 reach
every output format, and an output name must say its format."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import csv as pacsv

from service.bulk.formats import UsageError
from service.bulk.ray_data import BatchScorer, Layout, _key
from service.bulk.ray_run import csv_parse_options
from service.bulk.readers import Columns, read_chunks
from service.bulk.remote import MAX_WAIT_S, _wait_s
from service.bulk.writers import escaped
from service.settings import Settings
from tests.service.bulk.test_formats import read_csv, score
from tests.service.bulk.test_processes import run as run_process

EMPTY = "text is empty or only whitespace"
NO_ID = "missing id: no 'id' value"
ID = Columns("text", "id", id_given=False)


# -- a quote never closed --------------------------------------------------------------------
def test_an_unterminated_quote_on_stdin_exits_2_with_one_line():
    """The audit's case: before, one row was written and the run exited 0."""
    done = run_process("-", stdin=b'id,text\n1,"unterminated\n2,fine\n')
    assert done.returncode == 2, done.stderr.decode()
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        'sentiment-score: error: standard input: the row at line 2 opens a quote (") that is '
        "never closed"
    )


@pytest.mark.parametrize(
    ("content", "says"),
    [
        # after a quoted field over two lines (3-4) and more rows than a chunk: line 9
        (
            b'id,text\n1,a\n2,"two\nlines"\n3,b\n4,c\n5,d\n6,e\n7,"never closed\n8,f\n',
            r"in\.csv: the row at line 9 opens a quote",
        ),
        (b'"id,text\n1,a\n', r"in\.csv: the row at line 1 opens a quote"),  # the header
        (b'id,text\n1,"a"b\n2,c\n', r"in\.csv: the row at line 2 is not readable as CSV"),
    ],
    ids=["mid-file", "in the header", "text after a closing quote"],
)
def test_malformed_quoting_stops_the_run_and_names_the_line(tmp_path, content, says):
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    out = tmp_path / "out.csv"
    with pytest.raises(UsageError, match=says):
        score(tmp_path, str(src), "-o", str(out), "--batch-size", "2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # no output, no temporary


# -- blank lines are rows ------------------------------------------------------------------------
def test_a_blank_line_in_a_one_column_csv_is_a_row_with_an_empty_text(tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(b"text\nhello world\n\nbye")
    out = tmp_path / "out.csv"
    assert score(tmp_path, str(src), "-o", str(out)) == 1  # one bad row > --max-errors 0
    records = read_csv(out)
    assert [r["row"] for r in records] == ["1", "2", "3"]
    assert [r["error"] for r in records] == ["", EMPTY, ""]
    assert records[0]["label"] and records[2]["label"] and not records[1]["label"]


def test_a_blank_line_in_a_wider_csv_is_a_row_of_empty_fields(tmp_path):
    src = tmp_path / "in.tsv"
    src.write_bytes(b"id\ttext\tstars\na\tfine\t5\n\nb\tbad\t1\n")
    out = tmp_path / "out.csv"
    assert score(tmp_path, str(src), "-o", str(out), "--max-errors", "1") == 0
    records = read_csv(out)
    # its id is the first thing missing (a blank line of a one-column CSV: its text)
    assert [(r["id"], r["error"]) for r in records] == [("a", ""), ("", NO_ID), ("b", "")]


def test_ray_reads_blank_csv_lines_as_the_in_process_reader_does():
    data = b"id,text\na,fine\n\nb,bye\n"
    table = pacsv.read_csv(
        pa.BufferReader(data),
        parse_options=csv_parse_options("csv"),
        convert_options=pacsv.ConvertOptions(column_types={"id": pa.binary(), "text": pa.binary()}),
    )
    assert table.to_pylist() == [
        {"id": b"a", "text": b"fine"},
        {"id": b"", "text": b""},
        {"id": b"b", "text": b"bye"},
    ]


# -- a row without its id ---------------------------------------------------------------------------
def write_jsonl(path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_jsonl_records_without_the_id_are_bad_rows_not_numbered(tmp_path):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "text": "A wonderful film."},
            {"text": "no id at all"},
            {"id": None, "text": "a null id"},
            {"id": 2, "text": "Dull."},
        ],
    )
    out = tmp_path / "out.jsonl"
    assert score(tmp_path, src, "-o", str(out), "--max-errors", "2") == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", None, None, 2]
    assert [r["error"] for r in records] == [None, NO_ID, NO_ID, None]
    assert records[1]["label"] is None and records[3]["label"] is not None


def test_id_column_given_and_the_first_record_lacks_it(tmp_path):
    """Before, the first record was keyed 1: the same id as the second record."""
    src = write_jsonl(
        tmp_path / "in.jsonl", [{"text": "first, no key"}, {"key": 1, "text": "second"}]
    )
    out = tmp_path / "out.csv"
    assert score(tmp_path, src, "-o", str(out), "--id-column", "key", "--max-errors", "1") == 0
    records = read_csv(out)
    assert [(r["key"], r["error"]) for r in records] == [
        ("", "missing id: no 'key' value"),
        ("1", ""),
    ]


def test_csv_and_parquet_rows_without_the_id_are_bad_rows(tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(b"text,id\nhello there,7\nno id field\nan empty id,\n")
    out = tmp_path / "out.csv"
    assert score(tmp_path, str(src), "-o", str(out), "--max-errors", "2") == 0
    # an empty cell is no id: in the output it could not be told from a missing one
    assert [(r["id"], r["error"]) for r in read_csv(out)] == [("7", ""), ("", NO_ID), ("", NO_ID)]
    table = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": pa.array([1, None], pa.int64()), "text": ["a", "b"]}), table)
    assert score(tmp_path, str(table), "-o", str(out), "--max-errors", "1") == 0
    assert [(r["id"], r["error"]) for r in read_csv(out)] == [("1", ""), ("", NO_ID)]


def test_ray_actors_judge_missing_ids_as_in_process(tmp_path):
    """BatchScorer's row judging (no cluster, no model: only what turns a batch into rows)."""
    records = [{"id": "a", "text": "x"}, {"text": "no id"}, {"id": None, "text": "null"}]
    local = next(
        read_chunks(write_jsonl(tmp_path / "in.jsonl", records), "jsonl", ID, 10, 99).chunks
    )
    actor = object.__new__(BatchScorer)
    actor.settings, actor.layout = Settings(), Layout("jsonl", "text", "id")
    remote = actor._records(pa.table({"text": [json.dumps(r) for r in records]}))
    assert remote.errors == local.errors == [None, NO_ID, NO_ID]
    assert [_key(k, actor.layout, n) for n, k in enumerate(remote.keys, 1)] == local.keys
    assert local.keys == ["a", None, None]
    actor.layout = Layout("parquet", "text", "id")
    batch = actor._rows(pa.table({"text": ["x", "y"], "id": pa.array([1, None], pa.int64())}))
    assert (batch.keys, batch.errors) == ([1, None], [None, NO_ID])
    actor.layout = Layout("csv", "text", "id")  # Ray reads CSV cells as bytes
    batch = actor._rows(pa.table({"text": [b"x", b"y"], "id": [b"a", b""]}))
    assert batch.errors == [None, NO_ID]


# -- ids that are not UTF-8 ------------------------------------------------------------------------
def test_an_id_that_is_not_utf8_reaches_parquet_and_csv(tmp_path):
    src = tmp_path / "b.csv"
    src.write_bytes(b"id,text\nx,ok\n\xff,fine\n")
    as_parquet = tmp_path / "b.parquet"
    assert score(tmp_path, str(src), "-o", str(as_parquet)) == 0  # before: UnicodeEncodeError
    assert [r["id"] for r in pq.read_table(as_parquet).to_pylist()] == ["x", "\\xff"]
    as_csv = tmp_path / "b.out.csv"
    assert score(tmp_path, str(src), "-o", str(as_csv)) == 0
    lines = as_csv.read_bytes().split(b"\n")
    assert lines[2].startswith(b"\xff,") and lines[2].endswith(b",")  # the bytes as they came


def test_a_json_lone_surrogate_id_reaches_csv(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a\\ud800", "text": "fine"}\n')
    out = tmp_path / "out.csv"
    assert score(tmp_path, str(src), "-o", str(out)) == 0  # before: UnicodeEncodeError
    assert read_csv(out)[0]["id"] == "a\\ud800"


def test_escaped_keys():
    assert escaped("caf\udce9") == "caf\\xe9"
    assert escaped("caf\udce9", keep_bytes=True) == "caf\udce9"
    assert escaped("\ud800é") == "\\ud800é"
    assert escaped(7) == 7 and escaped("plain") == "plain"


# -- output names ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["out.xlsx", "out"])
def test_an_output_name_must_say_its_format(tmp_path, name):
    src = tmp_path / "in.csv"
    src.write_bytes(b"text\nfine\n")
    out = tmp_path / name
    with pytest.raises(UsageError, match=r"cannot tell the format of .*--output-format"):
        score(tmp_path, str(src), "-o", str(out))
    assert not out.exists()
    assert score(tmp_path, str(src), "-o", str(out), "--output-format", "jsonl") == 0
    assert json.loads(out.read_text())["row"] == 1


# -- Retry-After --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("7", 7.0),
        (" 3 ", 3.0),
        ("3600", MAX_WAIT_S),
        ("²", None),  # before: isdigit() took it and float() raised
        ("١٢", None),  # Arabic-Indic digits
        ("1.5", None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_in_ascii_seconds_else_the_default_pause(header, wait):
    default = _wait_s(None, 2)
    assert _wait_s(header, 2) == (default if wait is None else wait)
