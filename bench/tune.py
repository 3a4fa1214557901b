"""Tuning sweeps for the service's settings, one dimension at a time, with the harness.

    python -m bench.tune [--dims max_batch_size,model_variant] [--base max_batch_size=16]
                         [--duration S]

Each dimension runs the service once per value (on top of ``--base``), through all four
workloads, in one harness session (``bench.run --systems c-...``), and writes
``bench/results/tuning-<dim>.{json,md,png}``; ``tuning.md`` collects the summaries.
Numbers from one sweep are comparable with each other, not across sweeps run at
different times on a machine that was doing other work (each file says whether it was
quiet). Server CPU milliseconds per text is printed because it depends least on load.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench import run

# What the issue asks to try.
DIMENSIONS: dict[str, list[str]] = {
    "inference_workers": ["1", "2"],
    "intra_op_threads": ["1", "2"],
    "max_batch_size": ["16", "32", "64", "128"],
    "max_wait_ms": ["0", "2", "5"],
    "model_variant": ["float", "int8"],
    "workers": ["1", "2"],  # uvicorn worker processes (SENTIMENT_WORKERS)
    "pin_inference_threads": ["off", "auto"],
}


SHORT = {
    "inference_workers": "workers",
    "intra_op_threads": "intra",
    "max_batch_size": "batch",
    "max_wait_ms": "wait",
    "model_variant": "",
    "workers": "processes",
    "pin_inference_threads": "pin-",
}


def variant_specs(dim: str, values: list[str], base: str) -> list[str]:
    """``--variant`` specs: NAME:base settings,dim=value."""
    specs = []
    for value in values:
        settings = ",".join(x for x in (base, f"{dim}={value}") if x)
        specs.append(f"{SHORT[dim]}{value}:{settings}")
    return specs


def summary(result: dict, dim: str) -> str:
    lines = [
        f"### {dim} ({'quiet' if result['quiet'] else 'BUSY machine'}, {result['started']}, "
        f"{result['settings']['duration_s']:g} s per run)",
        "",
        "| variant | workload | texts/s | p50 ms | p99 ms | errors | CPU ms/text | peak RSS MB |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    labels = {s["key"]: s["label"].removeprefix("this service, ") for s in result["systems"]}
    for r in result["results"]:
        per_text = 1000 * r["server_cpu_s"] / max(1, r["ok"] * r["texts_per_request"])
        lines.append(
            f"| {labels[r['system']]} | {r['workload']} | {r['texts_per_s']:.0f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | {per_text:.2f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    ready = ", ".join(f"{labels[s['key']]}: {s.get('ready_s', 0):.2f} s" for s in result["systems"])
    return "\n".join([*lines, "", f"Ready after start: {ready}.", ""])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tune", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dims", default=",".join(DIMENSIONS))
    parser.add_argument("--base", default="", help="settings every variant gets, key=value,...")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--workloads", help="comma list (default: all four)")
    parser.add_argument("--out", type=Path, default=run.RESULTS_DIR)
    args = parser.parse_args(argv)
    sections = []
    for dim in args.dims.split(","):
        specs = variant_specs(dim, DIMENSIONS[dim], args.base)
        argv_run = ["--quick", "--systems", ",".join("c-" + s.split(":")[0] for s in specs)]
        argv_run += [f"--variant={s}" for s in specs]
        argv_run += ["--duration", str(args.duration), "--out", str(args.out)]
        argv_run += ["--name", f"tuning-{dim}"]
        if args.workloads:
            argv_run += ["--workloads", args.workloads]
        run.main(argv_run)
        result = json.loads((args.out / f"tuning-{dim}.json").read_text())
        sections.append(summary(result, dim))
        print(sections[-1])
    path = args.out / "tuning.md"
    header = f"# Tuning sweeps (base: {args.base or 'defaults'})\n\n"
    path.write_text(header + "\n".join(sections))
    print(f"tune: wrote {path}")


if __name__ == "__main__":
    main()
