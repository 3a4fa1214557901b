"""bench.bulk reads sentiment-score's own summary line: the two must keep agreeing."""

from __future__ import annotations

import argparse

from bench.bulk import SUMMARY, markdown
from service.bulk.cli import Counts, _summary


def test_the_summary_line_is_what_the_bench_parses():
    args = argparse.Namespace(output="scored.csv")
    line = _summary(Counts(rows=20_000, bad=3), 4.17, 4.59, args)
    found = SUMMARY.search(line)
    assert found, line
    assert found.groups() == ("20,000", "3", "4.17", "4.59")


def test_markdown_states_the_median_ratio_against_the_target():
    pair = {
        "order": "d-bulk",
        "bulk": {"texts_per_s": 4500.0, "process_wall_s": 5.0},
        "d": {"texts_per_s": 5000.0},
        "ratio": 0.9,
        "ratio_end_to_end": 0.8,
    }
    text = markdown(
        {
            "started": "now",
            "commit": "abc",
            "reviews": 20000,
            "ceiling_config": "1,4,2,8",
            "pairs": [pair],
            "median_ratio": 0.9,
            "median_ratio_end_to_end": 0.8,
        }
    )
    assert "| 1 | d-bulk | 4,500 | 5,000 | 90.0% | 5.00 s | 80.0% |" in text
    assert "Median ratio: **90.0%** (target 90%)" in text


def test_sentiment_score_runs_on_the_ceilings_bundle_not_the_default_model(tmp_path):
    import json

    from bench.bulk import bulk
    from service.settings import Settings

    reviews = tmp_path / "reviews.jsonl"
    texts = ["A wonderful film.", "Dull and far too long.", "I loved it.", "Awful.", "Fine."]
    reviews.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    specialist = Settings(models=["sentiment-lstm"]).resolved_model_dir()
    # The default model is sentiment-general: without --model the rows would name it.
    result = bulk(specialist, reviews, tmp_path, len(texts), [])
    assert result["rows"] == len(texts)
    scored = (tmp_path / "scored.csv").read_text()
    assert "sentiment-lstm" in scored and "sentiment-general" not in scored


def test_measure_stamps_its_start_and_removes_its_work_folder(tmp_path, monkeypatch):
    """The reviews file and every run's output (about 34 MB) go when the bench ends, and
    the time recorded is the time it began."""
    import tempfile

    import bench.bulk

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    events = []
    monkeypatch.setattr(bench.bulk.time, "strftime", lambda fmt: events.append("stamp") or "t0")

    def fake_measure(args, work):
        events.append("work")
        (work / "review.jsonl").write_text("{}\n")
        events.append(work)
        return {"commit": "abc"}

    monkeypatch.setattr(bench.bulk, "_measure", fake_measure)
    result = bench.bulk.measure(argparse.Namespace())
    work = events[-1]
    assert events[:2] == ["stamp", "work"]
    assert work.parent == tmp_path and work.name.startswith("bench-bulk-")
    assert not work.exists()
    assert result == {"started": "t0", "commit": "abc"}
