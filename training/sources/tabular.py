"""CSV, TSV and JSON Lines with configurable text, label and group columns."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from training.sources.base import (
    UNDECODABLE,
    RawRow,
    SourceError,
    SourceReport,
    SourceSpec,
    file_codec,
    require_file,
)

# Python's csv module refuses fields over 128 KiB by default; reviews can be long.
csv.field_size_limit(1 << 24)


def read_delimited(spec: SourceSpec, report: SourceReport, delimiter: str) -> Iterator[RawRow]:
    """Rows of each CSV/TSV file; a header row names the columns unless ``header = false``."""
    for split, path in spec.files():
        # surrogateescape: an undecodable byte becomes a marker the row check counts,
        # instead of an exception that would end the whole file.
        with require_file(path, spec.name).open(
            encoding=file_codec(spec.encoding), errors="surrogateescape", newline=""
        ) as handle:
            reader = _reader(handle, delimiter, spec.quoting)
            yield from _delimited_rows(_checked(reader, spec, path), spec, split, path, report)


def _reader(handle, delimiter: str, quoting: str):
    if quoting == "none":  # a quote is a character like any other
        return csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_NONE)
    # strict: a quote opened and never closed where a field ends stops the file with an
    # error, instead of swallowing the rows after it into one field.
    return csv.reader(handle, delimiter=delimiter, strict=True)


def _checked(reader, spec: SourceSpec, path: Path) -> Iterator[list[str]]:
    """The reader's rows; a row it cannot read (a quote breaking the quoting, a field over
    the size limit) is an error naming the line the row starts on."""
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise SourceError(_broken(spec, path, start, reader.line_num, exc)) from None
        yield fields


def _delimited_rows(rows, spec: SourceSpec, split: str, path: Path, report: SourceReport):
    header = next(rows, []) if spec.header else []
    if spec.header and not header:
        raise SourceError(f"{spec.name}: {path} has no header row (its first line is empty)")
    columns = [_column(spec, key, header, path) for key in _keys(spec)]
    for fields in rows:
        row = _pick(fields, columns, split, report, spec.encoding)
        if row is not None:
            yield row


def _broken(spec: SourceSpec, path: Path, start: int, end: int, exc: csv.Error) -> str:
    where = f"line {start}" + (f" (read to line {end})" if end > start else "")
    if spec.quoting == "none":
        hint = ""
    elif spec.reader == "tsv":
        hint = '; if its quotes are ordinary characters, set quoting = "none" for this source'
    else:
        hint = "; a field that opens with a quote must close with one just before , or the line end"
    return f"{spec.name}: {path}: cannot read the row starting at {where} ({exc}){hint}"


def read_jsonl(spec: SourceSpec, report: SourceReport) -> Iterator[RawRow]:
    """One JSON object per line; the columns are its keys."""
    text_key, label_key, group_key = _keys(spec)
    for split, path in spec.files():
        first = True  # per file, as a CSV's header is: each file may be laid out its own way
        with require_file(path, spec.name).open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    item = json.loads(raw.decode(file_codec(spec.encoding)))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    report.read += 1
                    bad = isinstance(exc, UnicodeDecodeError)
                    report.drop(f"not {spec.encoding}" if bad else "not valid JSON")
                    continue
                if not isinstance(item, dict):
                    report.read += 1
                    report.drop("not a JSON object")
                    continue
                if first:  # JSON Lines have no header: the first object stands for one
                    _check_keys(item, (text_key, label_key), path, number)
                    first = False
                text = item.get(text_key)
                if not isinstance(text, str | int | float | None) or isinstance(text, bool):
                    report.read += 1
                    report.drop(f"text is not a string (a JSON {_json_type(text)})")
                    continue
                group = item.get(group_key) if group_key is not None else None
                yield RawRow(
                    _as_text(text),
                    _as_text(item.get(label_key)),
                    "" if group is None else f"{spec.name}:{group}",
                    split,
                )


def _keys(spec: SourceSpec) -> tuple:
    return spec.text, spec.label, spec.group


def _column(spec: SourceSpec, key: str | int | None, header: list[str], path: Path) -> int | None:
    """The index of a configured column; a missing one is an error naming it."""
    if key is None:
        return None
    if isinstance(key, int):
        if spec.header and key >= len(header):
            raise SourceError(
                f"{spec.name}: {path} has no column {key} (columns are numbered from 0; "
                f"its header has {len(header)})"
            )
        return key
    if not spec.header:
        raise SourceError(f"{spec.name}: {path} has no header row; give columns as numbers")
    if key not in header:
        names = ", ".join(map(repr, header))
        tabs = '; its header holds tabs: reader = "tsv"?' if "\t" in "".join(header) else ""
        raise SourceError(f"{spec.name}: {path} has no column {key!r} (its columns: {names}){tabs}")
    if header.count(key) > 1:
        raise SourceError(f"{spec.name}: {path} has two columns named {key!r}: rename one")
    return header.index(key)


def _pick(fields, columns, split, report: SourceReport, encoding: str):
    text_at, label_at, group_at = columns
    wanted = [c for c in columns if c is not None]
    if len(fields) <= max(wanted):
        if fields:  # a blank line is nothing, not a bad row
            report.read += 1
            report.drop("too few columns")
        return None
    if any(UNDECODABLE.search(field) for field in fields):
        report.read += 1
        report.drop(f"not {encoding}")
        return None
    group = fields[group_at] if group_at is not None else ""
    return RawRow(fields[text_at], fields[label_at], group and f"{report.source}:{group}", split)


def _check_keys(item: dict, keys: tuple, path: Path, line: int) -> None:
    for key in keys:
        if key not in item:
            raise SourceError(
                f"{path}:{line}: no key {key!r} (its keys: {', '.join(map(str, item))})"
            )


def _as_text(value) -> str:
    return "" if value is None else str(value)


def _json_type(value) -> str:
    return {bool: "boolean", dict: "object", list: "array"}.get(type(value), type(value).__name__)
