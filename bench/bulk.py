"""``sentiment-score`` in process against the in-process ceiling, side by side.

The same IMDB test reviews (20,000 by default, a fixed sample) go to both, each run in a
fresh process, alternating which goes first:

- (d) ``bench.ceiling`` in its best configuration (found by its own sweep on these
  reviews, or given with ``--config``): onnxruntime alone on pre-tokenized, globally
  length-sorted batches; no reading, no tokenizing, no writing;
- ``sentiment-score reviews.jsonl -o scored.csv``: reading the JSON Lines file, checking
  and encoding every text, length groups, onnxruntime, and writing the CSV.

sentiment-score's rate is over its whole scoring run (the first row read to the output
renamed into place); its start-up (imports, loading and self-checking the bundle) is
reported beside it. The target (issue 17): >= 90% of (d)'s texts/s.

    python -m bench.bulk                      # full: 20,000 reviews, sweep, 3 pairs
    python -m bench.bulk --reviews 2000 --pairs 1 --config 1,4,2,1   # a quick look
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.procs import PROJECT_ROOT, git_commit
from bench.workloads import sample_reviews, write_payloads

SUMMARY = re.compile(r"([\d,]+) rows? \(([\d,]+) not scored\) in ([\d.]+) s: .*\(([\d.]+) s with")
SWEEP = ("1,2", "4,8,16,32,64,128", "1,2")  # bench.run's full grid


def ceiling(bundle: Path, reviews: Path, work: Path, budget_s: float, config: str | None) -> dict:
    """One ``bench.ceiling`` process: its sweep (config None) or one configuration."""
    out = work / f"ceiling-{time.monotonic_ns()}.json"
    command = [sys.executable, "-m", "bench.ceiling", str(bundle), "--reviews", str(reviews)]
    if config:
        command += ["--config", config]
    else:
        command += ["--intra-op", SWEEP[0], "--batch-sizes", SWEEP[1], "--threads", SWEEP[2]]
    command += ["--budget", str(budget_s), "--out", str(out)]
    subprocess.run(command, check=True, cwd=PROJECT_ROOT, timeout=1800)
    return json.loads(out.read_text())


def bulk(bundle: Path, reviews: Path, work: Path, expected_rows: int, extra: list[str]) -> dict:
    """One ``sentiment-score`` process over the reviews with (d)'s bundle; its own figures
    and the wall."""
    out = work / "scored.csv"
    command = [sys.executable, "-m", "service.bulk", str(reviews), "-o", str(out)]
    command += [*extra, "--model", str(bundle)]
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1800, check=False
    )
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"sentiment-score failed ({done.returncode}):\n{done.stderr}")
    found = SUMMARY.search(done.stderr)
    if not found:
        raise RuntimeError(f"no summary line in:\n{done.stderr}")
    rows, bad = int(found.group(1).replace(",", "")), int(found.group(2).replace(",", ""))
    with out.open(newline="") as scored:
        output = list(csv.DictReader(scored))
    written, models = len(output), {(row["model"], row["model_version"]) for row in output}
    if (rows, bad, written) != (expected_rows, 0, expected_rows):
        raise RuntimeError(f"expected {expected_rows} rows scored, got {rows} ({bad} bad)")
    manifest = json.loads((bundle / "manifest.json").read_text())
    if models != {(manifest["name"], manifest["version"])}:
        raise RuntimeError(f"sentiment-score used {models}, not (d)'s bundle {bundle}")
    scoring_s = float(found.group(3))
    return {
        "rows": rows,
        "scoring_s": scoring_s,
        "texts_per_s": rows / scoring_s,
        "run_s": float(found.group(4)),  # inside the process, start-up included
        "process_wall_s": wall,  # the Python interpreter's own start too
        "end_to_end_texts_per_s": rows / wall,
    }


def measure(args: argparse.Namespace) -> dict:
    """The sweep (unless ``--config``) and the pairs, in a work folder removed afterwards
    (the reviews file and each run's output: about 34 MB)."""
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as work:
        return {"started": started, **_measure(args, Path(work))}


def _measure(args: argparse.Namespace, work: Path) -> dict:
    from service.settings import Settings

    bundle = args.bundle or Settings(models=["sentiment-lstm"]).resolved_model_dir()
    reviews = write_payloads(sample_reviews(args.reviews), work)["review"]
    config = args.config
    sweep = None
    if config is None:
        print("bench.bulk: finding the ceiling's best configuration (its sweep)", flush=True)
        sweep = ceiling(bundle, reviews, work, args.sweep_budget, None)
        best = sweep["best"]
        config = ",".join(
            str(best[k]) for k in ("intra_op_threads", "batch_size", "threads", "batches_per_call")
        )
    pairs = []
    for k in range(args.pairs):
        order = ("d", "bulk") if k % 2 == 0 else ("bulk", "d")
        pair: dict = {"order": "-".join(order)}
        for who in order:
            if who == "d":
                pair["d"] = ceiling(bundle, reviews, work, args.budget, config)["best"]
            else:
                pair["bulk"] = bulk(bundle, reviews, work, args.reviews, args.bulk_args.split())
        pair["ratio"] = pair["bulk"]["texts_per_s"] / pair["d"]["texts_per_s"]
        pair["ratio_end_to_end"] = pair["bulk"]["end_to_end_texts_per_s"] / pair["d"]["texts_per_s"]
        print(_pair_line(k, pair), flush=True)
        pairs.append(pair)
    return {
        "commit": git_commit(),
        "bundle": str(bundle),
        "reviews": args.reviews,
        "ceiling_config": config,
        "bulk_args": args.bulk_args,
        "ceiling_sweep_best": sweep["best"] if sweep else None,
        "pairs": pairs,
        "median_ratio": statistics.median(p["ratio"] for p in pairs),
        "median_ratio_end_to_end": statistics.median(p["ratio_end_to_end"] for p in pairs),
        "median_bulk_texts_per_s": statistics.median(p["bulk"]["texts_per_s"] for p in pairs),
        "median_d_texts_per_s": statistics.median(p["d"]["texts_per_s"] for p in pairs),
    }


def _pair_line(k: int, pair: dict) -> str:
    b, d = pair["bulk"], pair["d"]
    return (
        f"pair {k + 1} ({pair['order']}): sentiment-score {b['texts_per_s']:,.0f} texts/s "
        f"({b['rows']:,} in {b['scoring_s']:.2f} s; {b['process_wall_s']:.2f} s as a whole "
        f"process) vs (d) {d['texts_per_s']:,.0f}: {pair['ratio']:.1%} "
        f"({pair['ratio_end_to_end']:.1%} end to end)"
    )


def markdown(result: dict) -> str:
    lines = [
        f"# sentiment-score vs the in-process ceiling ({result['started']}, commit "
        f"`{result['commit']}`)",
        "",
        f"{result['reviews']:,} IMDB test reviews; (d) = `bench.ceiling --config "
        f"{result['ceiling_config']}` (intra-op threads, batch size, threads, batches per call).",
        "",
        "| pair | order | sentiment-score texts/s | (d) texts/s | ratio | whole process | ratio end to end |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for k, p in enumerate(result["pairs"], 1):
        b, d = p["bulk"], p["d"]
        lines.append(
            f"| {k} | {p['order']} | {b['texts_per_s']:,.0f} | {d['texts_per_s']:,.0f} | "
            f"{p['ratio']:.1%} | {b['process_wall_s']:.2f} s | {p['ratio_end_to_end']:.1%} |"
        )
    lines += [
        "",
        f"Median ratio: **{result['median_ratio']:.1%}** (target 90%); end to end, "
        f"interpreter start and model load included: {result['median_ratio_end_to_end']:.1%}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reviews", type=int, default=20_000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--budget", type=float, default=5.0, help="(d)'s timed seconds per run")
    parser.add_argument("--sweep-budget", type=float, default=1.5)
    parser.add_argument("--config", help="(d)'s configuration; default: its sweep's best")
    parser.add_argument("--bundle", type=Path)
    parser.add_argument(
        "--bulk-args", default="", help="more sentiment-score flags, e.g. '--workers 3'"
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results" / "bulk")
    args = parser.parse_args(argv)
    result = measure(args)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
