"""``sentiment-score`` in process, against the real bundle: every format in and out, the
same numbers as the model, ids or row numbers, bad rows in an ``error`` column, exit
statuses, the progress bar. (Processes, pipes, signals and --server: test_processes.py.)
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import math
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pyarrow as pa  # the 'score' extra (the dev extra installs it)
import pyarrow.parquet as pq
import pytest

from service.bulk.cli import main, parser, run
from service.bulk.formats import UsageError
from service.bulk.progress import Progress
from tests.support.servers import BINARY_MODEL, NEGATIVE_TEXT, POSITIVE_TEXT

TEXTS = [
    POSITIVE_TEXT,
    NEGATIVE_TEXT,
    "It was fine, I guess. Nothing special; the popcorn was good.",
    "Ünïcödé café — “quotes”, a comma, and a\nnewline inside the field",
    "Boring",
] * 3  # more rows than --batch-size below: several chunks, order kept across them


def score(tmp_path: Path, *argv: str) -> int:
    # The binary test bundle unless a test names a model (the default model has 3 labels).
    model = [] if "--model" in argv else ["--model", BINARY_MODEL]
    return run(parser().parse_args([*argv, *model, "-q"]))


def read_csv(path: Path, delimiter: str = ",") -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def expected(bundle, texts: list[str]) -> tuple[np.ndarray, list[str]]:
    """The model's probabilities and labels, straight from the bundle (no sentiment-score)."""
    rows = bundle.outputs(bundle.encoder.encode_ids(texts))
    labels = [bundle.labels[i] for i in bundle.manifest.predicted(rows)]
    return bundle.manifest.probabilities(rows), labels


def check_scores(records: list[dict], bundle, texts: list[str], manifest: dict) -> None:
    probabilities, labels = expected(bundle, texts)
    assert len(records) == len(texts)
    for k, record in enumerate(records):
        assert record["label"] == labels[k], k
        for j, label in enumerate(manifest["labels"]):
            assert float(record[f"p_{label}"]) == pytest.approx(probabilities[k][j], abs=1e-6)
        assert record["model"] == BINARY_MODEL
        assert record["model_version"] == manifest["version"]
        assert record["error"] in ("", None)


def write_csv(path: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# -- formats ------------------------------------------------------------------------------------
def test_csv_with_ids_in_input_order(tmp_path, bundle, manifest):
    ids = [f"r{k:03d}" for k in range(len(TEXTS))][::-1]
    src = write_csv(
        tmp_path / "in.csv",
        ["id", "stars", "text"],
        [[i, 5, t] for i, t in zip(ids, TEXTS, strict=True)],
    )
    out = tmp_path / "out.csv"
    assert score(tmp_path, str(src), "-o", str(out), "--batch-size", "4") == 0
    records = read_csv(out)
    assert list(records[0]) == [
        "id",
        "label",
        "p_negative",
        "p_positive",
        "model",
        "model_version",
        "error",
    ]
    assert [r["id"] for r in records] == ids
    check_scores(records, bundle, TEXTS, manifest)


def test_tsv_without_ids_gets_row_numbers(tmp_path, bundle, manifest):
    src = write_csv(tmp_path / "in.tsv", ["review"], [[t] for t in TEXTS], delimiter="\t")
    out = tmp_path / "out.tsv"
    assert score(tmp_path, str(src), "-o", str(out), "--text-column", "review") == 0
    records = read_csv(out, "\t")
    assert [r["row"] for r in records] == [str(k) for k in range(1, len(TEXTS) + 1)]
    check_scores(records, bundle, TEXTS, manifest)


def test_jsonl_in_and_out(tmp_path, bundle, manifest):
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"id": k * 10, "text": t}) + "\n\n" for k, t in enumerate(TEXTS))
    )
    out = tmp_path / "out.ndjson"
    assert score(tmp_path, str(src), "-o", str(out), "--batch-size", "7") == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == [k * 10 for k in range(len(TEXTS))]  # JSON ids stay ints
    check_scores(records, bundle, TEXTS, manifest)


def test_parquet_in_and_out_keeps_the_id_type(tmp_path, bundle, manifest):
    src = tmp_path / "in.parquet"
    table = pa.table(
        {"text": TEXTS, "review_id": pa.array(range(100, 100 + len(TEXTS)), pa.int64())}
    )
    pq.write_table(table, src, row_group_size=4)
    out = tmp_path / "out.parquet"
    argv = [str(src), "-o", str(out), "--id-column", "review_id", "--batch-size", "5"]
    assert score(tmp_path, *argv) == 0
    result = pq.read_table(out)
    assert result.schema.field("review_id").type == pa.int64()
    assert result.schema.field("p_positive").type == pa.float64()
    records = result.to_pylist()
    assert [r["review_id"] for r in records] == list(range(100, 100 + len(TEXTS)))
    check_scores(records, bundle, TEXTS, manifest)


def test_csv_to_parquet_and_parquet_to_jsonl(tmp_path, bundle, manifest):
    src = write_csv(tmp_path / "in.csv", ["text"], [[t] for t in TEXTS])
    as_parquet = tmp_path / "scored.pq"
    assert score(tmp_path, str(src), "-o", str(as_parquet)) == 0
    records = pq.read_table(as_parquet).to_pylist()
    assert [r["row"] for r in records] == list(range(1, len(TEXTS) + 1))
    check_scores(records, bundle, TEXTS, manifest)
    texts = tmp_path / "texts.parquet"
    pq.write_table(pa.table({"text": TEXTS}), texts)
    out = tmp_path / "out.txt"
    assert score(tmp_path, str(texts), "-o", str(out), "--output-format", "jsonl") == 0
    check_scores([json.loads(x) for x in out.read_text().splitlines()], bundle, TEXTS, manifest)


def test_many_rows_of_every_length_keep_their_order(tmp_path, bundle, manifest):
    """More rows than the first call's head start, of very different lengths: every row
    still gets its own text's score, in input order."""
    texts = [f"{TEXTS[k % len(TEXTS)]} {'and then more ' * (k % 37)}#{k}" for k in range(700)]
    src = write_csv(tmp_path / "in.csv", ["text"], [[t] for t in texts])
    out = tmp_path / "out.csv"
    assert score(tmp_path, str(src), "-o", str(out)) == 0
    records = read_csv(out)
    assert [r["row"] for r in records] == [str(k) for k in range(1, 701)]
    check_scores(records, bundle, texts, manifest)


def test_the_model_by_name_or_directory(tmp_path, bundle_dir, manifest):
    src = write_csv(tmp_path / "in.csv", ["text"], [["a fine film"]])
    for model in (BINARY_MODEL, str(bundle_dir)):
        out = tmp_path / "out.csv"
        assert score(tmp_path, str(src), "-o", str(out), "--model", model) == 0
        assert read_csv(out)[0]["model_version"] == manifest["version"]


# -- bad rows -----------------------------------------------------------------------------------------
def test_bad_csv_rows_get_an_error_and_the_run_goes_on(tmp_path, monkeypatch, bundle, manifest):
    monkeypatch.setenv("SENTIMENT_MAX_TEXT_CHARS", "100")
    raw = (
        b"id,text\n"
        b"good-1,A wonderful film.\n"
        b"empty,\n"
        b"blank,   \n"
        b"short-row\n"
        b"bad-utf8,caf\xe9 au lait\n"
        b"too-long," + b"a" * 101 + b"\n"
        b"control,a\x01b\n"
        b"good-2,Dull and far too long.\n"
    )
    src = tmp_path / "in.csv"
    src.write_bytes(raw)
    out = tmp_path / "out.csv"
    assert score(tmp_path, str(src), "-o", str(out)) == 1  # 6 bad rows > --max-errors 0
    records = {r["id"]: r for r in read_csv(out)}
    assert list(records) == [
        "good-1",
        "empty",
        "blank",
        "short-row",
        "bad-utf8",
        "too-long",
        "control",
        "good-2",
    ]
    errors = {k: r["error"] for k, r in records.items() if r["error"]}
    assert errors == {
        "empty": "text is empty or only whitespace",
        "blank": "text is empty or only whitespace",
        "short-row": "missing text",
        "bad-utf8": "text is not valid UTF-8 (byte 0xe9 at character 3)",
        "too-long": "text has 101 characters; the limit is 100",
        "control": (
            "text contains control characters (U+0001 at character 1): NUL, ESC, DEL and the "
            "other C0 codes are refused; tab, newline, carriage return, vertical tab and form "
            "feed are accepted"
        ),
    }
    for bad in errors:
        assert records[bad]["label"] == records[bad]["p_positive"] == records[bad]["model"] == ""
    check_scores(
        [records["good-1"], records["good-2"]],
        bundle,
        ["A wonderful film.", "Dull and far too long."],
        manifest,
    )
    assert score(tmp_path, str(src), "-o", str(out), "--max-errors", "6") == 0
    assert score(tmp_path, str(src), "-o", str(out), "--max-errors", "5") == 1


def test_bad_jsonl_rows(tmp_path):
    lines = [
        b'{"text": "A wonderful film."}',
        b'{"text": null}',
        b'{"review": "no text field"}',
        b'{"text": 42}',
        b"[1, 2]",
        b'{"text": "unterminated',
        b'{"text": "caf\xff"}',
        b"[" * 100_000,  # deeper than Python's json decoder can recurse
        b'{"text": "Dull and far too long."}',
    ]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    assert score(tmp_path, str(src), "-o", str(out), "--max-errors", "10") == 0
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["row"] for r in records] == list(range(1, 10))
    errors = [r["error"] for r in records]
    assert errors[0] is None and errors[-1] is None
    assert errors[1:8] == [
        "missing text",
        "missing text",
        "text is int, not a string",
        "line 5 is a JSON list, not an object",
        errors[5],
        "text is not valid UTF-8 (byte 0xff at character 3)",
        "line 8 is not valid JSON (nested too deeply)",
    ]
    assert errors[5].startswith("line 6 is not valid JSON")
    assert records[1]["p_positive"] is None and not math.isnan(records[0]["p_positive"])


def test_bad_parquet_rows(tmp_path):
    src = tmp_path / "in.parquet"
    texts = pa.array([b"A wonderful film.", None, b"", b"caf\xff", b"Dull."], pa.binary())
    pq.write_table(pa.table({"text": texts}), src)
    out = tmp_path / "out.csv"
    assert score(tmp_path, str(src), "-o", str(out), "--max-errors", "3") == 0
    errors = [r["error"] for r in read_csv(out)]
    assert errors == ["", "missing text", "text is empty or only whitespace", errors[3], ""]
    assert "not valid UTF-8" in errors[3]


# -- the input as a whole is wrong: exit 2 with a clear message ---------------------------------
@pytest.mark.parametrize(
    ("content", "argv", "says"),
    [
        (b"id,review\n1,x\n", [], "no column 'text'"),
        (b"text\nx\n", ["--id-column", "key"], "no column 'key'"),
        (b"", [], "is empty"),
        (b"text\nx\n", ["--model", "no-such-model"], "no model to score with"),
        (b"text\nx\n", ["--model", "/no/such/bundle"], "no manifest.json there"),
        (b"text\nx\n", ["--batch-size", "0"], "--batch-size must be at least 1"),
    ],
    ids=["no text column", "no id column", "empty file", "unknown model", "a path", "batch size 0"],
)
def test_usage_errors(tmp_path, content, argv, says):
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    with pytest.raises(UsageError, match=says):
        score(tmp_path, str(src), "-o", str(tmp_path / "out.csv"), *argv)
    assert not (tmp_path / "out.csv").exists()


def test_a_damaged_bundle_is_a_usage_error_not_a_traceback(tmp_path, bundle_dir):
    damaged = tmp_path / "bundle"
    shutil.copytree(bundle_dir, damaged)
    (damaged / "tokenizer.json").unlink()
    src = write_csv(tmp_path / "in.csv", ["text"], [["a fine film"]])
    with pytest.raises(UsageError, match=r"the bundle .*bundle cannot be used: .*tokenizer.json"):
        score(tmp_path, str(src), "-o", str(tmp_path / "out.csv"), "--model", str(damaged))


def test_unknown_extensions_and_missing_files(tmp_path):
    with pytest.raises(UsageError, match="cannot tell the format"):
        score(tmp_path, str(tmp_path / "in.xlsx"))
    with pytest.raises(UsageError, match="cannot read"):
        score(tmp_path, str(tmp_path / "missing.csv"), "-o", str(tmp_path / "o.csv"))
    with pytest.raises(UsageError, match="Parquet cannot be read from standard input"):
        score(tmp_path, "-", "--input-format", "parquet")


def test_a_failed_run_leaves_no_output(tmp_path, monkeypatch):
    """An error mid-run: neither the output nor its temporary file stays behind."""
    src = write_csv(tmp_path / "in.csv", ["text"], [["fine"]] * 10)
    out = tmp_path / "out.csv"

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("service.bulk.writers.CsvWriter.write", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        score(tmp_path, str(src), "-o", str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


# -- progress -------------------------------------------------------------------------------------
class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only():
    tty = Terminal()
    bar = Progress(tty, total=1000)
    bar.update(250, 500)
    line = tty.getvalue()
    assert line.startswith("\r[") and "50%" in line and "rows/s" in line and "ETA" in line
    bar.finish("done")
    assert tty.getvalue().endswith("\r\x1b[Kdone\n")
    pipe = io.StringIO()
    quiet = Progress(pipe, total=1000)
    quiet.update(250, 500)
    quiet.finish("done")
    assert pipe.getvalue() == "done\n"


def test_progress_without_a_known_size_shows_rows_and_rate():
    line = Progress(Terminal(), total=None).line(1234, 0, 2.0)
    assert line == "1,234 rows  617 rows/s"


def test_the_console_script_is_declared():
    """``sentiment-score`` in pyproject.toml points at this CLI (installed with the package)."""
    scripts = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    module, _, name = scripts["project"]["scripts"]["sentiment-score"].partition(":")
    assert getattr(importlib.import_module(module), name) is main
