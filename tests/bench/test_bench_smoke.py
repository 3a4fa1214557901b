"""The benchmark harness runs end to end (tiny durations). Speed is never judged here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.data import default_data_path

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = {"review-c1", "review-c64", "sentence-c64", "batch64-c4"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not default_data_path().exists(), reason="IMDB data not available"),
]


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m module args`` from the project root; it must succeed."""
    # The default bundle and settings, whatever the developer's shell exports.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMENT_")}
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def run_bench(tmp_path: Path, *args: str) -> tuple[dict, str]:
    done = run_module("bench.run", "--smoke", "--out", str(tmp_path), *args)
    return json.loads((tmp_path / "smoke.json").read_text()), done.stdout


def test_smoke_run_measures_every_system_and_workload(tmp_path: Path) -> None:
    result, stdout = run_bench(tmp_path)

    assert result["mode"] == "smoke"
    assert result["failures"] == []
    assert {s["key"] for s in result["systems"]} == {"b", "c", "d", "e"}
    for system in ("b", "c", "e"):
        ran = {r["workload"] for r in result["results"] if r["system"] == system}
        assert ran == WORKLOADS, system
    assert {r["workload"] for r in result["results"] if r["system"] == "d"} == {
        "inproc-reviews",
        "inproc-sentences",
    }
    service = [r for r in result["results"] if r["system"] == "c"]
    assert all(r["errors"] == 0 for r in service), service
    assert sum(r["ok"] for r in service) > 0
    service_info = next(s for s in result["systems"] if s["key"] == "c")
    assert service_info["ready_s"] > 0 and service_info["peak_rss_mb"] > 0
    # The service and (d)'s best configuration back to back: one pair in smoke mode, and
    # the 64-review target is decided by it.
    (pair,) = service_info["pairs"]
    assert pair["c_texts_per_s"] > 0 and pair["d_texts_per_s"] > 0 and pair["c_errors"] == 0
    target = next(t for t in result["targets"] if t["target"].startswith("64 reviews/request"))
    assert target["value"] == pytest.approx(pair["ratio"])
    assert "back-to-back" in target["shown"] and "Back to back" in stdout
    # Every target is computed (PASS, MISS, or n/a where its baseline did not run), printed.
    assert len(result["targets"]) == 8
    assert "Targets" in stdout
    assert (tmp_path / "smoke.md").read_text().startswith("Benchmark (smoke mode")
    if _have("matplotlib"):  # the chart needs the train extra
        assert (tmp_path / "smoke.png").stat().st_size > 0


def test_async_fallback_generator(tmp_path: Path) -> None:
    """Without wrk the harness drives the servers with its own async client."""
    result, _ = run_bench(
        tmp_path, "--systems", "e", "--workloads", "review-c1", "--generator", "async"
    )
    (row,) = result["results"]
    assert row["generator"] == "async"
    assert row["errors"] == 0 and row["ok"] > 0


def test_tokenizer_cost_prints_every_encoder(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.tokenizer_cost import main

    main(["--reviews", "40", "--rounds", "2"])
    out = capsys.readouterr().out
    assert "40 IMDB test reviews" in out
    assert "take the Python path" in out
    for name in ("reference (Rust)", "regex only", "vocab table", "1 review per call"):
        line = next(line for line in out.splitlines() if name in line)
        assert float(line.split("median")[1].split("µs")[0]) > 0


def test_hostile_prints_each_input_before_and_now(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.hostile import main

    main(["--chars", "400", "--rounds", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| <br")]
    assert len(rows) == 4  # the break pattern through Python and Rust, spaces and NBSP
    for row in rows:
        before, now = (float(cell.replace(",", "")) for cell in row.split("|")[2:4])
        assert before > 0 and now > 0


def test_ab_alternates_two_servers_and_reports_the_ratio(tmp_path: Path) -> None:
    """``bench.ab``: fresh server pairs per round, slices alternating, one ratio per slice."""
    out = tmp_path / "ab.json"
    done = run_module(
        *("bench.ab", "base", "nowait:max_wait_ms=0", "--workload", "review-c1"),
        *("--rounds", "2", "--slices", "1", "--slice-s", "1", "--warmup-s", "0"),
        *("--reviews", "40"),
        *("--out", str(out)),
    )
    summary = json.loads(out.read_text())
    assert summary["b"] == "this service, max_wait_ms=0"
    assert len(summary["slices"]) == 2 and len(summary["rounds"]) == 2
    assert [piece["round"] for piece in summary["slices"]] == [1, 2]
    for piece in summary["slices"]:
        assert piece["a"] > 0 and piece["b"] > 0 and piece["errors"] == [0, 0]
        assert piece["ratio"] == pytest.approx(piece["b"] / piece["a"])
    assert summary["rounds"] == [piece["ratio"] for piece in summary["slices"]]
    assert summary["median_ratio"] > 0 and "B/A median of rounds" in done.stdout


def test_explain_bench_measures_both_endpoints_alone_and_together(tmp_path: Path) -> None:
    out = tmp_path / "explain.json"
    done = run_module(
        *("bench.explain", "--duration", "1", "--rounds", "1", "--predict-concurrency", "4"),
        *("--work", str(tmp_path), "--out", str(out)),
    )
    (round_,) = json.loads(out.read_text())["rounds"]
    phases = {
        "predict alone": {"predict"},
        "explain alone": {"explain"},
        "both": {"predict", "explain"},
    }
    assert {phase: set(loads) for phase, loads in round_.items()} == phases
    for loads in round_.values():
        for figures in loads.values():
            assert figures["req_s"] > 0 and figures["errors"] == 0, figures
    assert "| both | /explain |" in done.stdout


def test_swap_memory_swaps_every_served_model_under_load(tmp_path: Path) -> None:
    out = tmp_path / "swap-memory.json"
    done = run_module("bench.swap_memory", "--swaps", "2", "--pause-s", "0", "--out", str(out))
    result = json.loads(out.read_text())
    promoted = sorted(
        f"{p.parent.name}/{p.read_text().strip()}" for p in ROOT.glob("models/*/PROMOTED")
    )
    assert sorted(result["models"]) == promoted
    assert result["errors"] == 0 and result["requests"] > 0, result
    peaks = result["peak_rss_mb"]
    assert len(peaks["after_each_swap"]) == 2
    assert 0 < peaks["ready"] <= peaks["under_load"] <= result["peak_rss_mb_max"]
    assert "2 swaps under batch64-c4" in done.stdout


def test_model_cost_measures_binary_and_three_class_bundles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both committed bundles: the specialist has an AUC, the three-class model none."""
    from bench.model_cost import main
    from sentiment_core.bundle import promoted_bundle

    names = ("sentiment-lstm", "sentiment-general")
    bundles = [promoted_bundle(ROOT / "models", name) for name in names]
    out = tmp_path / "cost.json"
    main([*map(str, bundles), "--texts", "64", "--json", str(out)])
    specialist, general = json.loads(out.read_text())
    assert specialist["test_roc_auc"] > 0.9 and general["test_roc_auc"] is None
    for row in (specialist, general):
        assert row["texts_per_s"] > 0 and 0.5 < row["test_accuracy"] < 1
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"| {bundles[1].name} |") and "| – |" in line for line in lines)
