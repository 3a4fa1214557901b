"""``sentiment-score`` in process against ``sentiment-score --ray`` on the local cluster
(``bench.ray --parts bulk``): the same IMDB reviews, each run in a fresh process, the
rates from sentiment-score's own summary line (``bench.bulk``).

On one 2-core machine both nodes share the two cores the in-process run has to itself:
the Ray run shows what Ray Data costs (its start-up, the read and repartition tasks,
moving blocks through the object store), not what more nodes would add.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.bulk import bulk
from bench.workloads import sample_reviews


def write_reviews(count: int, path: Path) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for k, text in enumerate(sample_reviews(count)):
            f.write(json.dumps({"id": k, "text": text}) + "\n")
    return path


def compare(address: str, count: int, actors: int, work: Path, bundle: Path) -> list[dict]:
    reviews = write_reviews(count, work / "reviews.jsonl")
    rows = []
    runs = (
        ("in process", []),
        (f"Ray Data, {actors} actors", ["--ray", address, "--ray-actors", str(actors)]),
    )
    for name, extra in runs:
        result = bulk(reviews, work, count, ["--model", str(bundle), *extra])
        row = {"system": f"sentiment-score, {name}", "workload": f"{count:,} IMDB reviews"}
        row |= {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows
