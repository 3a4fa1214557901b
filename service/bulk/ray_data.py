"""``sentiment-score --ray ADDRESS``: the table read by Ray Data and scored by an actor pool.

Each actor holds one onnxruntime session and the encoder (``LocalScorer`` with one
inference thread: the in-process path's bundle checks, length groups and grouped runs)
and scores ``--batch-size`` rows at a time (``map_batches``). The blocks keep their order
(``preserve_order``) and stream back to this process, which numbers the rows and writes
them with the in-process writers, so the output file is the one an in-process run writes.
(Scoring a review costs the cluster about 0.4 ms of CPU; writing its row here costs
microseconds, so one writer keeps up with many nodes.)

Rows are judged as the in-process readers judge them: a missing, empty, too long or
non-UTF-8 text, a missing id, or a JSON line that is not an object, is a bad row with the
same message; a blank CSV line is a row of empty fields. Differences: a CSV row with fewer
fields than the header stops the run (Arrow's parser), a quote never closed is read to
the end of the file (only the first chunk is checked, by the in-process reader), JSON
Lines are split at ``\\n`` only (a lone ``\\r`` ends no line), and Arrow's readers have no
line limit (a line over it is read, then a bad row for its text's length).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.bulk.formats import UsageError
from service.bulk.rows import Chunk, Scored, id_problem, merged

ACTOR_CPUS = 1.0  # one onnxruntime session with one thread
READ_CPUS = 0.25  # read tasks must find room beside a full actor pool
LINE_MARK = "\x00line\x00"  # a bad JSON line's number, filled in here (rows are numbered here)


@dataclass(frozen=True)
class Layout:
    """How the actors find a row's text and key in a batch."""

    fmt: str  # csv/tsv and parquet: columns; jsonl: one JSON record per "text" row
    text: str
    key: str | None  # None: rows are keyed by their number


class BatchScorer:
    """A Ray Data actor: a batch of input rows in, one scored row per record out."""

    def __init__(
        self, model: str | None, layout: Layout, env: dict[str, str], first: str | None = None
    ):
        os.environ.update(env)  # the caller's SENTIMENT_* settings, before Settings()
        from service.bulk.local import LocalScorer
        from service.settings import Settings

        self.settings = Settings()
        self.scorer = LocalScorer(model, self.settings, workers=1)
        self.layout = layout
        self.first = first  # fingerprint() of the run's first chunk

    def __call__(self, batch: Any) -> Any:
        chunk = self._records(batch) if self.layout.fmt == "jsonl" else self._rows(batch)
        texts = chunk.valid()
        # In process, the run's first chunk (and no other) is grouped in two parts (its
        # head start): the same here, or a few scores would differ in their last bits.
        job = self.scorer.submit(texts, first=fingerprint(texts) == self.first)
        scored = merged(chunk, self.scorer.result(job), len(self.scorer.labels))
        return to_table(chunk.keys, scored, self.scorer.labels)

    def _rows(self, batch: Any) -> Chunk:
        import pyarrow as pa

        chunk = Chunk()
        # As bytes, decoded row by row: one row's bad UTF-8 must not fail the batch.
        texts = batch.column(self.layout.text).cast(pa.binary()).to_pylist()
        key = self.layout.key
        keys = batch.column(key).to_pylist() if key else [0] * len(texts)  # (0: numbered here)
        for value, raw in zip(keys, texts, strict=True):
            text = None if raw is None else raw.decode("utf-8", "surrogateescape")
            missing = id_problem(value, key) if key else None
            chunk.add(value if key else None, text, self.settings.max_text_chars, missing)
        return chunk

    def _records(self, batch: Any) -> Chunk:
        from service.bulk.readers import _record

        chunk = Chunk()
        for raw in batch.column("text").to_pylist():
            record, problem = _record(_line(raw), 0)
            if problem:
                problem = problem.replace("line 0", f"line {LINE_MARK}", 1)
            value = record.get(self.layout.key) if self.layout.key else None
            if self.layout.key:  # no id: a bad row, as in process
                problem = problem or id_problem(value, self.layout.key)
            key = json.dumps(value) if value is not None else None
            chunk.add(key, record.get(self.layout.text), self.settings.max_text_chars, problem)
        return chunk


def fingerprint(texts: list[str]) -> str:
    """Which chunk this is, by content: the driver takes the first chunk's from the
    in-process reader, each actor its batch's (the valid texts, in order)."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return f"{len(texts)}:{digest.hexdigest()}"


def _line(raw: str) -> str:
    """read_text decoded the bytes as Latin-1, losslessly: back to bytes, then UTF-8 with
    bad bytes kept (they make a bad row, as in process)."""
    return raw.encode("latin-1").decode("utf-8", "surrogateescape").lstrip("\ufeff")


def has_record(row: dict[str, Any]) -> bool:
    """A JSON Lines line that is not blank (a blank line is not a record)."""
    return bool(_line(row["text"]).strip())


def to_table(keys: list[Any], scored: Scored, labels: list[str]) -> Any:
    """A batch of scored rows as an Arrow table (``_key``: the key, None for a row number;
    CSV keys as bytes: they may hold bytes that are not UTF-8)."""
    import pyarrow as pa

    keys = [k.encode("utf-8", "surrogateescape") if isinstance(k, str) else k for k in keys]
    models = [m or (None, None) for m in scored.models]
    columns = {"_key": pa.array(keys), "label": pa.array(scored.labels, pa.string())}
    for j, label in enumerate(labels):
        columns[f"p_{label}"] = pa.array(scored.probabilities[:, j], pa.float64())
    columns["model"] = pa.array([m[0] for m in models], pa.string())
    columns["model_version"] = pa.array([m[1] for m in models], pa.string())
    columns["error"] = pa.array(scored.errors, pa.string())
    return pa.table(columns)


def from_table(
    table: Any, labels: list[str], layout: Layout, first_row: int
) -> tuple[list[Any], Scored]:
    """``to_table``'s rows back as the writers take them, numbered from ``first_row``."""
    numbers = range(first_row, first_row + table.num_rows)
    raw_keys = table.column("_key").to_pylist()
    keys = [_key(k, layout, n) for k, n in zip(raw_keys, numbers, strict=True)]
    probabilities = np.column_stack(
        [
            table.column(f"p_{label}").to_numpy(zero_copy_only=False).astype(np.float64)
            for label in labels
        ]
    )
    names, versions = table.column("model").to_pylist(), table.column("model_version").to_pylist()
    errors = [
        e.replace(LINE_MARK, str(n)) if e else e
        for e, n in zip(table.column("error").to_pylist(), numbers, strict=True)
    ]
    return keys, Scored(
        probabilities=probabilities,
        labels=table.column("label").to_pylist(),
        models=[(a, b) if a is not None else None for a, b in zip(names, versions, strict=True)],
        errors=errors,
    )


def _key(value: Any, layout: Layout, number: int) -> Any:
    """A row's key as the in-process reader gives it: its number when the table has no
    key column, else the value (a missing one, a bad row's, stays null)."""
    if layout.key is None:
        return number
    if value is None:
        return None
    if layout.fmt == "jsonl":
        return json.loads(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def scored_batches(
    dataset: Any, labels: list[str], layout: Layout
) -> Iterator[tuple[list, Scored]]:
    """The scored dataset's batches, in input order, ready for the writers."""
    done = 0
    for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        if table.num_rows:
            yield from_table(table, labels, layout, done + 1)
            done += table.num_rows


def check_cluster(resources: dict[str, float], actors: int) -> None:
    cpus = resources.get("CPU", 0.0)
    if cpus < actors * ACTOR_CPUS + READ_CPUS:
        raise UsageError(
            f"the cluster has {cpus:g} CPUs: too few for {actors} scoring actors "
            f"({ACTOR_CPUS:g} CPU each) and the readers ({READ_CPUS:g}); use fewer --ray-actors"
        )
