"""Peak memory of one service process through hot swaps under load.

The service serves its default models (both committed ones) while wrk drives 64-review
requests at concurrency 4 (the heaviest workload of ``make bench``) and ``POST /admin/model``
reloads each model in turn. A swap holds two copies of a model for a moment (the new one
is loaded and self-checked while the old one finishes its batches), so the process's peak
RSS rises well above its steady state; the Kubernetes manifest's memory limit is checked
against the peak written here (tests/deploy/test_k8s_service_contract.py).

    python -m bench.swap_memory              # 48 swaps, about 2 minutes
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench.loadgen import pick_generator, run_load
from bench.procs import PROJECT_ROOT, Server, git_commit, peak_rss_mb, start_service
from bench.workloads import sample_reviews, write_payloads

ADMIN_TOKEN = "bench-swap-memory"
OUT = PROJECT_ROOT / "bench" / "results" / "swap-memory.json"


def served_models(server: Server) -> list[tuple[str, str]]:
    with urllib.request.urlopen(server.url + "/models", timeout=10) as answer:
        return [(m["name"], m["version"]) for m in json.load(answer)["models"]]


def swap(server: Server, name: str, version: str) -> float:
    """Reload one model through the admin endpoint; the seconds it took."""
    request = urllib.request.Request(
        server.url + "/admin/model",
        data=json.dumps({"model": name, "version": version}).encode(),
        headers={"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"},
        method="POST",
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=120) as answer:
        answer.read()
    return time.monotonic() - started


def measure(swaps: int, pause_s: float, work: Path) -> dict:
    payloads = write_payloads(sample_reviews(2000), work / "payloads")["batch64"]
    server = start_service(work, SENTIMENT_ADMIN_TOKEN=ADMIN_TOKEN)
    try:
        models = served_models(server)
        load: dict = {}
        duration = 10 + swaps * (pause_s + 1.5)  # outlasts the swaps
        driver = threading.Thread(
            target=lambda: load.update(
                run_load(server.url, payloads, concurrency=4, duration_s=duration,
                         generator=pick_generator(None))
            )
        )  # fmt: skip
        driver.start()
        time.sleep(5)
        peaks = {"ready": server.startup_peak_rss_mb, "under_load": peak_rss_mb(server.pids())}
        after, seconds = [], []
        for i in range(swaps):
            seconds.append(swap(server, *models[i % len(models)]))
            after.append(peak_rss_mb(server.pids()))
            time.sleep(pause_s)
        driver.join()
    finally:
        server.stop()
    return {
        "commit": git_commit(),
        "models": [f"{name}/{version}" for name, version in models],
        "workload": "batch64-c4",
        "swaps": swaps,
        "swap_seconds_median": sorted(seconds)[len(seconds) // 2],
        "peak_rss_mb": {**peaks, "after_each_swap": [round(x, 1) for x in after]},
        "peak_rss_mb_max": round(max([*peaks.values(), *after]), 1),
        "requests": load.get("requests"),
        "errors": load.get("errors"),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--swaps", type=int, default=48)
    parser.add_argument("--pause-s", type=float, default=1.0, help="between swaps")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-swap-") as tmp:
        result = measure(args.swaps, args.pause_s, Path(tmp))
    peaks = result["peak_rss_mb"]
    print(f"models {', '.join(result['models'])}; {result['swaps']} swaps under batch64-c4")
    print(f"peak RSS: ready {peaks['ready']:.0f} MB, under load {peaks['under_load']:.0f} MB")
    for i in range(7, len(peaks["after_each_swap"]), 8):
        print(f"  after {i + 1} swaps: {peaks['after_each_swap'][i]:.0f} MB")
    print(
        f"max {result['peak_rss_mb_max']:.0f} MB; swap median {result['swap_seconds_median']:.2f}"
        f" s; {result['requests']} requests, {result['errors']} errors"
    )
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
