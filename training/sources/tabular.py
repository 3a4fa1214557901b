"""CSV, TSV and JSON Lines with configurable text, label and group columns."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

from training.sources.base import (
    RawRow,
    SourceError,
    SourceReport,
    SourceSpec,
    file_codec,
    require_file,
)

# Python's csv module refuses fields over 128 KiB by default; reviews can be long.
csv.field_size_limit(1 << 24)
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # the bytes surrogateescape could not decode


def read_delimited(spec: SourceSpec, report: SourceReport, delimiter: str) -> Iterator[RawRow]:
    """Rows of each CSV/TSV file; a header row names the columns unless ``header = false``."""
    for split, path in spec.files():
        # surrogateescape: an undecodable byte becomes a marker the row check counts,
        # instead of an exception that would end the whole file.
        with require_file(path, spec.name).open(
            encoding=file_codec(spec.encoding), errors="surrogateescape", newline=""
        ) as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, []) if spec.header else []
            if spec.header and not header:
                raise SourceError(
                    f"{spec.name}: {path} has no header row (its first line is empty)"
                )
            columns = [_column(spec, key, header, path) for key in _keys(spec)]
            for line, fields in enumerate(reader, start=2 if spec.header else 1):
                row = _pick(fields, columns, split, report, f"{path.name}:{line}", spec.encoding)
                if row is not None:
                    yield row


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
                except (UnicodeDecodeError, json.JSONDecodeError):
                    report.read += 1
                    report.drop("not valid JSON")
                    continue
                if not isinstance(item, dict):
                    report.read += 1
                    report.drop("not a JSON object")
                    continue
                if first:  # JSON Lines have no header: the first object stands for one
                    _check_keys(item, (text_key, label_key), path, number)
                    first = False
                group = item.get(group_key) if group_key is not None else None
                yield RawRow(
                    _as_text(item.get(text_key)),
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
        return key
    if not spec.header:
        raise SourceError(f"{spec.name}: {path} has no header row; give columns as numbers")
    if key not in header:
        raise SourceError(
            f"{spec.name}: {path} has no column {key!r} (its columns: {', '.join(header)})"
        )
    return header.index(key)


def _pick(fields, columns, split, report: SourceReport, where: str, encoding: str):
    text_at, label_at, group_at = columns
    wanted = [c for c in columns if c is not None]
    if len(fields) <= max(wanted):
        if fields:  # a blank line is nothing, not a bad row
            report.read += 1
            report.drop("too few columns")
        return None
    if any(_UNDECODABLE.search(field) for field in fields):
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
