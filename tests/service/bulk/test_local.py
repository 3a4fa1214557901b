"""In-process scoring of chunks with no scorable row: an all-bad file, a whole chunk of bad
rows between good ones, and a Ray actor's all-bad batch (the same ``LocalScorer.result``)
give bad rows, counted, and the run goes on; before, 0 rows failed to reshape."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from service.bulk.local import LocalScorer
from service.bulk.ray_data import BatchScorer, Layout
from service.settings import Settings
from tests.service.bulk.test_formats import read_csv, score
from tests.support.servers import BINARY_MODEL, NEGATIVE_TEXT, POSITIVE_TEXT
from tests.support.sessions import sessions_of, uses_shared_arena

EMPTY = "text is empty or only whitespace"


def test_an_all_bad_csv_is_written_with_its_errors(tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(b"id,text\nr1,\nr2,   \n")
    out = tmp_path / "out.csv"
    assert score(tmp_path, str(src), "-o", str(out)) == 1  # 2 bad rows > --max-errors 0
    assert [(r["id"], r["label"], r["error"]) for r in read_csv(out)] == [
        ("r1", "", EMPTY),
        ("r2", "", EMPTY),
    ]
    assert score(tmp_path, str(src), "-o", str(out), "--max-errors", "2") == 0


def test_an_all_bad_jsonl_file(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a"}\n')
    out = tmp_path / "out.jsonl"
    assert score(tmp_path, str(src), "-o", str(out)) == 1
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {
            "id": "a",
            "label": None,
            "p_negative": None,
            "p_positive": None,
            "model": None,
            "model_version": None,
            "error": "missing text",
        }
    ]


def test_a_whole_chunk_of_bad_rows_between_good_chunks(tmp_path):
    """Chunks of 4: good, all bad, all bad, then one good row; order and scores kept."""
    texts = [POSITIVE_TEXT, NEGATIVE_TEXT] * 2 + [""] * 8 + [POSITIVE_TEXT]
    src = tmp_path / "in.csv"
    src.write_text("text\n" + "".join(f"{t}\n" for t in texts))
    out = tmp_path / "out.csv"
    assert score(tmp_path, str(src), "-o", str(out), "--batch-size", "4", "--max-errors", "8") == 0
    records = read_csv(out)
    assert [r["row"] for r in records] == [str(n) for n in range(1, 14)]
    assert [r["label"] for r in records] == ["positive", "negative"] * 2 + [""] * 8 + ["positive"]
    assert [r["error"] for r in records] == [""] * 4 + [EMPTY] * 8 + [""]


def test_an_empty_job_scores_to_an_empty_result(bundle_dir):
    scorer = LocalScorer(str(bundle_dir), Settings(), workers=1)
    try:
        scored = scorer.result(scorer.submit([]))
    finally:
        scorer.close()
    assert scored.probabilities.shape == (0, len(scorer.labels))
    assert (scored.labels, scored.models, scored.errors) == ([], [], [])


def test_a_ray_actor_scores_an_all_bad_batch(bundle_dir):
    """BatchScorer as Ray would call it (no cluster: the actor's own code, the real model)."""
    actor = BatchScorer(str(bundle_dir), Layout("csv", "text", "id"), {})
    try:
        table = actor(pa.table({"text": [b"", b"  "], "id": [b"a", b"b"]}))
    finally:
        actor.scorer.close()
    assert table.column("error").to_pylist() == [EMPTY, EMPTY]
    assert table.column("label").to_pylist() == [None, None]
    assert actor.scorer.model[0] == BINARY_MODEL


def test_a_scoring_run_uses_per_session_arenas_unless_the_setting_is_given(monkeypatch):
    """The service shares one arena by default; sentiment-score opens its own per session
    (one model: little memory to save, and the shared one cost it about 2% of its rate)."""
    monkeypatch.delenv("SENTIMENT_SHARED_ARENA", raising=False)
    by_default = LocalScorer(BINARY_MODEL, Settings())
    assert Settings().shared_arena  # the service's default is unchanged
    assert not any(uses_shared_arena(s) for s in sessions_of(by_default.bundle.scorer))
    monkeypatch.setenv("SENTIMENT_SHARED_ARENA", "true")
    asked = LocalScorer(BINARY_MODEL, Settings())
    assert all(uses_shared_arena(s) for s in sessions_of(asked.bundle.scorer))
    texts = [POSITIVE_TEXT, NEGATIVE_TEXT]
    scored = [scorer.result(scorer.submit(texts)) for scorer in (by_default, asked)]
    assert scored[0].labels == ["positive", "negative"] == scored[1].labels
    assert np.array_equal(scored[0].probabilities, scored[1].probabilities)
    for scorer in (by_default, asked):
        scorer.close()
