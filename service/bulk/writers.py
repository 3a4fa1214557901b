"""Output tables written chunk by chunk: CSV, TSV, JSON Lines, Parquet.

Every format has the same columns: the key (the input's id column, or ``row``: the row
number, 1 for the first data row), ``label``, one ``p_<label>`` probability per class in
the model's label order, ``model`` and ``model_version`` (what scored the row), and
``error`` (why a row was not scored; empty for scored rows, whose other columns are then
empty).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import IO, Any, Protocol

from service.bulk.formats import pyarrow_modules
from service.bulk.rows import Scored


class Writer(Protocol):
    def write(self, keys: list[Any], scored: Scored) -> None: ...
    def flush(self) -> None: ...  # what was written so far, out to the stream's file
    def close(self) -> None: ...


def columns(key: str, labels: list[str]) -> list[str]:
    return [key, "label", *(f"p_{label}" for label in labels), "model", "model_version", "error"]


def open_writer(
    fmt: str, stream: IO[bytes], key: str, labels: list[str], key_type: Any = None
) -> Writer:
    names = columns(key, labels)
    if fmt == "parquet":
        return ParquetWriter(stream, names, len(labels), key_type)
    if fmt == "jsonl":
        return JsonLinesWriter(stream, names)
    return CsvWriter(stream, names, "\t" if fmt == "tsv" else ",")


_SURROGATE = re.compile("[\ud800-\udfff]")


def escaped(key: Any, keep_bytes: bool = False) -> Any:
    """A str key as UTF-8 can hold it. A byte that was not UTF-8 (read as U+DC80..U+DCFF,
    "surrogateescape") stays that byte where the output is bytes (``keep_bytes``: CSV,
    TSV) and becomes ``\\xNN`` where it must be UTF-8 (Parquet); any other lone surrogate
    (a JSON ``\\ud800``) becomes ``\\udNNN``. (JSON Lines escapes both itself.)"""
    if not isinstance(key, str) or key.isascii():
        return key
    return _SURROGATE.sub(lambda m: _escape(m.group(), keep_bytes), key)


def _escape(char: str, keep_bytes: bool) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return char if keep_bytes else f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def _records(keys: list[Any], scored: Scored) -> list[list[Any]]:
    """One list of values per row, in ``columns`` order (None: empty)."""
    out = []
    for i, key in enumerate(keys):
        model = scored.models[i] or (None, None)
        probabilities = [None if math.isnan(p) else p for p in scored.probabilities[i].tolist()]
        out.append([key, scored.labels[i], *probabilities, *model, scored.errors[i]])
    return out


class CsvWriter:
    def __init__(self, stream: IO[bytes], names: list[str], delimiter: str):
        # surrogateescape: an id holding bytes that were not UTF-8 goes out as those bytes
        self._text = io.TextIOWrapper(
            stream, encoding="utf-8", errors="surrogateescape", newline="", write_through=False
        )
        self._csv = csv.writer(self._text, delimiter=delimiter, lineterminator="\n")
        self._csv.writerow(names)

    def write(self, keys: list[Any], scored: Scored) -> None:
        keys = [escaped(k, keep_bytes=True) for k in keys]
        self._csv.writerows(
            ["" if v is None else v for v in record] for record in _records(keys, scored)
        )

    def flush(self) -> None:
        self._text.flush()

    def close(self) -> None:
        self._text.flush()
        self._text.detach()


class JsonLinesWriter:
    def __init__(self, stream: IO[bytes], names: list[str]):
        self._stream = stream
        self._names = names

    def write(self, keys: list[Any], scored: Scored) -> None:
        lines = (
            json.dumps(dict(zip(self._names, record, strict=True)), default=str) + "\n"
            for record in _records(keys, scored)
        )
        self._stream.write("".join(lines).encode("ascii"))  # (json.dumps escapes the rest)

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()


class ParquetWriter:
    """One row group per chunk. The key keeps its Parquet type when the input was Parquet;
    row numbers are int64, other keys strings."""

    def __init__(self, stream: IO[bytes], names: list[str], classes: int, key_type: Any):
        pa, pq = pyarrow_modules()
        self._pa = pa
        key = key_type if key_type is not None else pa.int64() if names[0] == "row" else pa.string()
        fields = [(names[0], key), ("label", pa.string())]
        fields += [(name, pa.float64()) for name in names[2 : 2 + classes]]
        fields += [(name, pa.string()) for name in names[2 + classes :]]
        self._schema = pa.schema(fields)
        self._stringify = key_type is None and names[0] != "row"
        self._stream = stream
        self._writer = pq.ParquetWriter(stream, self._schema)

    def write(self, keys: list[Any], scored: Scored) -> None:
        if self._stringify:
            keys = [None if k is None else escaped(str(k)) for k in keys]
        records = _records(keys, scored)
        arrays = [
            self._pa.array([r[j] for r in records], type=field.type)
            for j, field in enumerate(self._schema)
        ]
        self._writer.write_batch(self._pa.RecordBatch.from_arrays(arrays, schema=self._schema))

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._writer.close()
