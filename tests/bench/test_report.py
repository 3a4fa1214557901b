"""The report's arithmetic: targets from rows, and the back-to-back pairs' median."""

from __future__ import annotations

import pytest

from bench import report


def row(system: str, workload: str, texts_per_s: float) -> dict:
    return {"system": system, "workload": workload, "texts_per_s": texts_per_s, "rps": 1.0}


def result_with(pairs: list[float] | None) -> dict:
    service = {"key": "c", "model_variant": "float"}
    if pairs is not None:
        service["pairs"] = [
            {"order": "d,c", "c_texts_per_s": r * 1000, "d_texts_per_s": 1000.0, "ratio": r}
            for r in pairs
        ]
    return {
        "default_variant": "float",
        "systems": [service, {"key": "d", "model_variant": "float"}],
        "results": [row("c", "batch64-c4", 600.0), row("d", "inproc-reviews", 1000.0)],
    }


def batch_target(result: dict) -> dict:
    return next(t for t in report.targets(result) if t["target"].startswith("64 reviews"))


def test_without_pairs_the_main_runs_decide():
    target = batch_target(result_with(None))
    assert target["value"] == pytest.approx(0.6) and target["status"] == "MISS"


@pytest.mark.parametrize(
    ("ratios", "median"), [([0.9, 0.7, 0.85], 0.85), ([0.7, 0.9], 0.8), ([0.81], 0.81)]
)
def test_with_pairs_their_median_decides(ratios, median):
    target = batch_target(result_with(ratios))
    assert target["value"] == pytest.approx(median)
    assert target["status"] == ("PASS" if median >= 0.8 else "MISS")
    assert "main runs: 60.0%" in target["shown"]  # the single runs' ratio stays visible


def test_a_near_miss_is_not_shown_rounded_up_to_the_target():
    target = batch_target(result_with([0.749, 0.766, 0.859, 0.826]))
    assert target["status"] == "MISS"
    assert (
        target["shown"].startswith("79.6% ") and "74.9% / 76.6% / 85.9% / 82.6%" in target["shown"]
    )


def test_pairs_are_listed_in_the_markdown():
    result = result_with([0.9, 0.7, 0.85])
    lines = report._pairs_lines(result)
    assert sum(line.startswith("| c |") for line in lines) == 3
