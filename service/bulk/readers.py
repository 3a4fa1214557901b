"""Input tables read in chunks of rows: CSV, TSV, JSON Lines, Parquet.

Memory stays bounded by the chunk, whatever the file's size: CSV and JSON Lines are read
line by line, Parquet by record batches. A row whose text cannot be scored (missing,
empty, not UTF-8, too long) or, in a table keyed by its id column, whose id is missing
(absent or null) becomes a bad row of its chunk; only a file that cannot be read as a
table at all (no such column, not CSV, a quote never closed, not UTF-8 but UTF-16)
stops the run. Every CSV line is a row: a blank one is a row whose fields are all empty.
(A blank JSON Lines line is not a record.) No line is held whole when it is far over the
text limit: it becomes a bad row (``lines``).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from service.bulk.formats import STDIO, UsageError, pyarrow_modules
from service.bulk.lines import BoundedLines, Overlong, check_utf8, line_limit, too_long
from service.bulk.rows import Chunk, id_problem, missing_id


@dataclass
class Source:
    """An input table: its chunks, its size for the progress bar (bytes or rows; None if
    unknown), the key column's name in the output, and its Parquet type if it had one."""

    chunks: Iterator[Chunk]
    total: int | None
    key: str
    key_type: Any = None


@dataclass
class Columns:
    text: str
    id: str | None  # None: rows are keyed by their number (1 = the first data row)
    id_given: bool  # the user named the id column (so it must exist)


class CountingReader(io.RawIOBase):
    """A binary stream that counts the bytes read through it (for the progress bar)."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        # read1: what is there now (a pipe's rows are scored as they come, not per 64 KiB)
        data = (
            self.raw.read1(len(buffer))
            if hasattr(self.raw, "read1")
            else self.raw.read(len(buffer))
        )
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def open_binary(path: str) -> IO[bytes]:
    if path == STDIO:
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # (closed by _closing, once its chunks are read)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def read_chunks(path: str, fmt: str, columns: Columns, chunk_rows: int, max_chars: int) -> Source:
    """``path`` (``-``: standard input) as a ``Source`` of chunks of ``chunk_rows`` rows."""
    if fmt == "parquet":
        return _parquet(path, columns, chunk_rows, max_chars)
    raw = open_binary(path)
    total = _size(raw)
    counting = CountingReader(raw)
    buffered = io.BufferedReader(counting, 1 << 16)
    check_utf8(buffered.peek(4)[:4], _name(path))
    # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name.
    stream = io.TextIOWrapper(
        buffered,
        encoding="utf-8-sig",
        errors="surrogateescape",
        newline="" if fmt != "jsonl" else None,
    )
    bounded = BoundedLines(stream, line_limit(max_chars))
    if fmt == "jsonl":
        lines, key = _jsonl_key(bounded, columns)
        chunks = _jsonl(lines, counting, key, columns.text, chunk_rows, max_chars)
        return Source(_closing(chunks, raw), total, key)
    csv.field_size_limit(bounded.limit)  # (a quote never closed: stopped at the limit)
    # strict: a quote never closed is an error, not the rest of the file read into one field
    rows = csv.reader(bounded, delimiter="\t" if fmt == "tsv" else ",", strict=True)
    header = _header(rows, path, bounded)
    text_at, id_at = _positions(header, columns, path)
    key = columns.id if id_at is not None else "row"
    lines = _csv_rows(rows, len(header), path, bounded)
    keyed = None if id_at is None else (id_at, key)
    chunks = _csv(lines, counting, text_at, keyed, chunk_rows, max_chars)
    return Source(_closing(chunks, raw), total, key)


def _closing(chunks: Iterator[Chunk], raw: IO[bytes]) -> Iterator[Chunk]:
    try:
        yield from chunks
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def _positions(header: list[str], columns: Columns, path: str) -> tuple[int, int | None]:
    if columns.text not in header:
        raise UsageError(f"{_name(path)} has no column {columns.text!r} (it has {header[:20]})")
    if columns.id is not None and columns.id not in header:
        if columns.id_given:
            raise UsageError(f"{_name(path)} has no column {columns.id!r} (it has {header[:20]})")
        return header.index(columns.text), None
    return header.index(columns.text), header.index(columns.id) if columns.id else None


def _header(rows, path: str, lines: BoundedLines) -> list[str]:
    try:
        header = next(rows, None)
    except csv.Error as exc:
        raise UsageError(_csv_problem(path, 1, exc)) from None
    if lines.covers(1, rows.line_num):
        raise UsageError(f"{_name(path)}: the header's {too_long(1, lines.limit)}")
    if header is None:
        raise UsageError(f"{_name(path)} is empty: expected a header row naming the columns")
    return header


def _csv_rows(rows, width: int, path: str, lines: BoundedLines):
    """The data rows, one per record, each with its problem (None, or a line too long
    to read); a blank line is a record of ``width`` empty fields."""
    start = rows.line_num + 1  # the line the next record starts on
    try:
        for row in rows:
            dropped = lines.covers(start, rows.line_num)
            yield row or [""] * width, dropped and too_long(dropped, lines.limit)
            start = rows.line_num + 1
    except csv.Error as exc:
        raise UsageError(_csv_problem(path, start, exc)) from None


def _csv_problem(path: str, line: int, exc: csv.Error) -> str:
    if str(exc) == "unexpected end of data":
        return (
            f'{_name(path)}: the row at line {line} opens a quote (") that is never closed, '
            'so every later line would be read into one field; close it, or double it ("")'
        )
    if str(exc).startswith("field larger than"):  # read no further: bounded memory
        return (
            f"{_name(path)}: the row at line {line} has a field of more than "
            f"{csv.field_size_limit():,} characters (4 x SENTIMENT_MAX_TEXT_CHARS, at least "
            '1 Mi): most likely a quote (") never closed; close it, or double it ("")'
        )
    return f"{_name(path)}: the row at line {line} is not readable as CSV: {exc}"


def _csv(rows, counting, text_at, id_at, chunk_rows, max_chars) -> Iterator[Chunk]:
    """``id_at``: (the id's position, its name), or None to key rows by their number."""
    chunk = Chunk()
    for number, (row, dropped) in enumerate(rows, 1):
        if dropped:  # (its fields are not the file's: no text, no id)
            chunk.add(number if id_at is None else None, None, max_chars, dropped)
        else:
            text = row[text_at] if text_at < len(row) else None
            key, problem = _csv_key(row, id_at, number)
            chunk.add(key, text, max_chars, problem)
        if len(chunk) == chunk_rows:
            chunk.end = counting.count
            yield chunk
            chunk = Chunk()
    if chunk:
        chunk.end = counting.count
        yield chunk


def _csv_key(row: list[str], id_at: tuple[int, str] | None, number: int) -> tuple[Any, Any]:
    if id_at is None:
        return number, None
    at, name = id_at
    return (row[at], id_problem(row[at], name)) if at < len(row) else (None, missing_id(name))


def _jsonl_key(bounded: BoundedLines, columns: Columns) -> tuple[Iterator[str], str]:
    """The key column: the id field if the first record has it, else row numbers."""
    # blank lines are not records; a line too long to read is (a bad one)
    lines = (line for line in bounded if isinstance(line, Overlong) or line.strip())
    first = next(lines, None)
    if first is None:
        return iter(()), "row"
    record, _ = _record(first, 1)
    if columns.id and (columns.id in record or columns.id_given):
        return itertools.chain([first], lines), columns.id
    return itertools.chain([first], lines), "row"


def _jsonl(lines, counting, key: str, text: str, chunk_rows, max_chars) -> Iterator[Chunk]:
    chunk, limit = Chunk(), line_limit(max_chars)
    for number, line in enumerate(lines, 1):
        if isinstance(line, Overlong):
            record, problem = {}, too_long(number, limit)
        else:
            record, problem = _record(line, number)
        if key == "row":
            chunk.add(number, record.get(text), max_chars, problem)
        else:  # no row numbers in an id column: a record without its id is a bad row
            value = record.get(key)
            chunk.add(value, record.get(text), max_chars, problem or id_problem(value, key))
        if len(chunk) == chunk_rows:
            chunk.end = counting.count
            yield chunk
            chunk = Chunk()
    if chunk:
        chunk.end = counting.count
        yield chunk


def _record(line: str, number: int) -> tuple[dict, str | None]:
    try:
        record = json.loads(line)
    except ValueError as exc:
        return {}, f"line {number} is not valid JSON ({exc})"
    except RecursionError:  # json's decoder recurses: "[[[[..." deeper than the stack
        return {}, f"line {number} is not valid JSON (nested too deeply)"
    if not isinstance(record, dict):
        return {}, f"line {number} is a JSON {type(record).__name__}, not an object"
    return record, None


def _parquet(path: str, columns: Columns, chunk_rows: int, max_chars: int):
    pa, pq = pyarrow_modules()
    if path == STDIO:
        raise UsageError("Parquet cannot be read from standard input (it needs a seekable file)")
    try:
        table = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise UsageError(f"cannot read {path} as Parquet: {exc}") from None
    _, id_at = _positions(table.schema_arrow.names, columns, path)
    wanted = [columns.text] + ([columns.id] if id_at is not None else [])
    kind = table.schema_arrow.field(columns.text).type
    text_types = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary)
    if not any(is_type(kind) for is_type in (*text_types, pa.types.is_large_binary)):
        raise UsageError(f"{path}: column {columns.text!r} is {kind}, not text")
    batches = table.iter_batches(batch_size=chunk_rows, columns=wanted)
    chunks = _parquet_chunks(batches, columns.id if id_at is not None else None, max_chars)
    if id_at is None:
        return Source(chunks, table.metadata.num_rows, "row")
    key_type = table.schema_arrow.field(columns.id).type
    return Source(chunks, table.metadata.num_rows, columns.id, key_type)


def _parquet_chunks(batches, key: str | None, max_chars: int) -> Iterator[Chunk]:
    """``key``: the id column's name, or None to key rows by their number."""
    import pyarrow as pa

    done = 0
    for batch in batches:
        # As bytes, decoded row by row: one row's bad UTF-8 must not fail its whole batch.
        raw = batch.column(0).cast(pa.binary()).to_pylist()
        keys = batch.column(1).to_pylist() if key else range(done + 1, done + len(raw) + 1)
        chunk = Chunk()
        for value, text in zip(keys, raw, strict=True):
            missing = id_problem(value, key) if key else None
            chunk.add(value, _decoded(text), max_chars, missing)
        done += len(raw)
        chunk.end = done
        yield chunk


def _decoded(value: bytes | None) -> Any:
    return None if value is None else value.decode("utf-8", "surrogateescape")


def _size(raw: IO[bytes]) -> int | None:
    """The file's size in bytes, or None for a pipe."""
    try:
        if not raw.seekable():
            return None
        size = raw.seek(0, io.SEEK_END)
        raw.seek(0)
        return size or None
    except (OSError, ValueError):
        return None


def _name(path: str) -> str:
    return "standard input" if path == STDIO else path
