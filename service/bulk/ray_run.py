"""The driver side of ``sentiment-score --ray``: check the input as the in-process run
does, read it with Ray Data, score it on an actor pool (``ray_data.BatchScorer``), and
hand the scored batches, in order, to the CLI's writers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment_core.manifest import read_manifest
from service.bulk import ray_data
from service.bulk.formats import STDIO, UsageError
from service.bulk.local import bundle_dir
from service.bulk.ray_data import (
    ACTOR_CPUS,
    READ_CPUS,
    BatchScorer,
    Layout,
    check_cluster,
    fingerprint,
    scored_batches,
)
from service.bulk.readers import Columns, read_chunks
from service.bulk.rows import Scored
from service.settings import Settings


@dataclass
class RayRun:
    key: str  # the output's key column
    key_type: Any  # its Parquet type, when the input was Parquet
    labels: list[str]
    total: int | None  # rows, when known up front (Parquet)
    batches: Iterator[tuple[list[Any], Scored]]


def start(
    address: str,
    path: str,
    fmt: str,
    columns: Columns,
    settings: Settings,
    model: str | None,
    batch_rows: int,
    actors: int | None,
) -> RayRun:
    if path == STDIO:
        raise UsageError("--ray reads a file (every node must see it at the same path), not stdin")
    # The in-process reader checks the file (columns, header, first record) and says
    # what the key column is; its rows are then read by Ray Data instead.
    # Its first chunk is told to the actors (BatchScorer: the in-process head start).
    probe = read_chunks(path, fmt, columns, batch_rows, settings.max_text_chars)
    first = next(probe.chunks, None)
    probe.chunks.close()
    bundle = bundle_dir(model, settings).resolve()  # one version for the whole run
    labels = list(read_manifest(bundle).labels)
    keyed = probe.key != "row"
    layout = Layout(fmt, columns.text, probe.key if keyed else None)

    from service.ray_serve.deploy import connect

    connect(address)
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    pool = actors or max(1, int((ray.cluster_resources().get("CPU", 1) - READ_CPUS) // ACTOR_CPUS))
    check_cluster(ray.cluster_resources(), pool)
    context = DataContext.get_current()
    context.execution_options.preserve_order = True  # the output keeps the input's order
    context.enable_progress_bars = False
    env = {k: v for k, v in os.environ.items() if k.startswith("SENTIMENT_")}
    rows = _read(path, fmt, layout)
    if fmt == "jsonl":  # blank lines are not records: out before the rows are counted
        rows = rows.filter(fn=ray_data.has_record, num_cpus=READ_CPUS)
    # Batches of exactly the in-process run's chunks (its length groups, so its scores to
    # the last bit): blocks of batch_rows rows, one block per call.
    rows = rows.repartition(target_num_rows_per_block=batch_rows, strict=True)
    scored = rows.map_batches(
        BatchScorer,
        fn_constructor_kwargs={
            "model": str(bundle),
            "layout": layout,
            "env": env,
            "first": fingerprint(first.valid()) if first is not None else None,
        },
        batch_size=batch_rows,
        batch_format="pyarrow",
        # --ray-actors N: N actors from the start; else Ray Data grows the pool from one.
        compute=ActorPoolStrategy(min_size=actors or 1, max_size=pool),
        num_cpus=ACTOR_CPUS,
    )
    total = probe.total if fmt == "parquet" else None
    return RayRun(probe.key, probe.key_type, labels, total, scored_batches(scored, labels, layout))


def _read(path: str, fmt: str, layout: Layout) -> Any:
    import pyarrow as pa
    import ray.data

    where = str(Path(path).resolve())
    if fmt == "parquet":
        wanted = [layout.text] + ([layout.key] if layout.key else [])
        return ray.data.read_parquet(where, columns=wanted, num_cpus=READ_CPUS)
    if fmt == "jsonl":
        # Latin-1 maps every byte to one character: the scorer gets the bytes back and
        # decodes them as the in-process reader does (bad UTF-8 makes a bad row).
        return ray.data.read_text(
            where, encoding="latin-1", drop_empty_lines=False, num_cpus=READ_CPUS
        )
    from pyarrow import csv as pacsv

    wanted = [layout.text] + ([layout.key] if layout.key else [])
    return ray.data.read_csv(
        where,
        parse_options=csv_parse_options(fmt),
        # Every column as bytes: texts decoded row by row, ids kept as written.
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.binary() for name in wanted}, include_columns=wanted
        ),
        num_cpus=READ_CPUS,
    )


def csv_parse_options(fmt: str) -> Any:
    """Arrow's CSV parsing as the in-process reader's: a blank line is a row (of empty
    fields), a quoted field may span lines."""
    from pyarrow import csv as pacsv

    return pacsv.ParseOptions(
        delimiter="\t" if fmt == "tsv" else ",", newlines_in_values=True, ignore_empty_lines=False
    )
