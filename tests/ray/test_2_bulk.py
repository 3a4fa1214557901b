"""``sentiment-score --ray``: Ray Data reads, an actor pool scores; the output is the file
the in-process run writes (CSV, JSON Lines, Parquet in; JSON Lines, CSV, Parquet out),
bad rows included, in input order over many batches."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bench.workloads import sample_reviews
from service.bulk.cli import main as score
from service.bulk.local import HEAD_START
from tests.support.reliability import review_texts, short_texts

pytestmark = pytest.mark.ray_cluster

BATCH = 32  # rows per actor call: many batches, so order and numbering are exercised


@pytest.fixture(scope="module")
def rows(reference) -> list[dict]:
    texts = short_texts(reference) + review_texts(reference, 150, min_chars=300)
    rows = [{"id": f"r{k}", "text": t} for k, t in enumerate(texts)]
    rows[3]["text"] = ""  # empty: a bad row
    rows[7]["text"] = "x" * 30_000  # over SENTIMENT_MAX_TEXT_CHARS
    rows[11]["text"] = 'A "quoted"\nmulti-line review, loved it.'
    return rows


def write_inputs(folder: Path, rows: list[dict]) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {}
    paths["csv"] = folder / "in.csv"
    with paths["csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "other"])
        for r in rows:
            writer.writerow([r["id"], r["text"], "x"])
    data = paths["csv"].read_bytes().replace(b"multi-line", b"multi-\xfflin", 1)  # bad UTF-8
    paths["csv"].write_bytes(data)
    paths["jsonl"] = folder / "in.jsonl"
    lines = [json.dumps(r) for r in rows]
    lines[20] = json.dumps({"id": "r20"})  # no text
    lines[21] = json.dumps({"id": "r21", "text": 42})  # not a string
    lines[22] = "{not json"
    lines[23] = json.dumps({"text": "no id here, a fine film"})  # keyed by its number
    lines.insert(30, "")  # a blank line is not a record
    paths["jsonl"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    paths["parquet"] = folder / "in.parquet"
    texts = [r["text"] for r in rows]
    texts[5] = None
    table = pa.table({"id": [r["id"] for r in rows], "text": texts})
    pq.write_table(table, paths["parquet"], row_group_size=50)
    return paths


def run(args: list[str], batch: int = BATCH) -> int:
    with pytest.raises(SystemExit) as done:
        score([*args, "--quiet", "--max-errors", "1000", "--batch-size", str(batch)])
    return done.value.code


@pytest.mark.parametrize(
    ("source", "output"), [("csv", "jsonl"), ("jsonl", "csv"), ("parquet", "parquet")]
)
def test_ray_data_writes_what_the_in_process_run_writes(
    cluster, bundle_dir, rows, tmp_path, source, output
):
    inputs = write_inputs(tmp_path, rows)
    here, there = tmp_path / f"local.{output}", tmp_path / f"ray.{output}"
    common = [str(inputs[source]), "--model", str(bundle_dir), "--workers", "1"]
    assert run([*common, "-o", str(here)]) == 0
    assert run([*common, "-o", str(there), "--ray", cluster.address, "--ray-actors", "2"]) == 0
    if output == "parquet":
        import pyarrow.parquet as pq

        local, remote = pq.read_table(here), pq.read_table(there)
        assert remote.schema == local.schema
        assert remote.to_pylist() == local.to_pylist()
        table = local.to_pylist()
    else:
        assert there.read_bytes() == here.read_bytes()
        table = list(csv.DictReader(here.open())) if output == "csv" else None
    if table is not None:
        errors = [r["error"] for r in table if r["error"]]
        assert len(table) == len(rows) and errors, (len(table), errors)


def test_chunks_over_the_head_start_are_grouped_as_in_process(cluster, bundle_dir, tmp_path):
    """In process, the run's first chunk is split at HEAD_START (service.bulk.local) and
    no other is: the actors do the same, whichever of them gets which chunk, or a few
    scores differ in their last bits (IMDB reviews: about one in 300)."""
    batch = HEAD_START + 44
    texts = sample_reviews(6 * batch)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    here, there = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    common = [str(source), "--model", str(bundle_dir), "--workers", "1"]
    assert run([*common, "-o", str(here)], batch) == 0
    assert (
        run([*common, "-o", str(there), "--ray", cluster.address, "--ray-actors", "2"], batch) == 0
    )
    assert there.read_bytes() == here.read_bytes()
