"""Results: one row per (system, workload), the targets, and the JSON / markdown / PNG files."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from bench.workloads import Workload

# (workload, numerator system, denominator system, metric, threshold, "ratio>=" | "ratio<=")
_RATIO_TARGETS = (
    (
        "batch64-c4",
        "d:inproc-reviews",
        "texts_per_s",
        0.8,
        ">=",
        "64 reviews/request: {c} ≥ 80% of {d} texts/s",
    ),
    ("review-c64", "b", "rps", 1.5, ">=", "1 review/request, c64: {c} ≥ 1.5× b req/s"),
    ("review-c64", "a", "rps", 50.0, ">=", "1 review/request, c64: {c} ≥ 50× a req/s"),
    ("sentence-c64", "e", "rps", 0.7, ">=", "1 sentence/request, c64: {c} ≥ 70% of e req/s"),
    ("review-c1", "b", "p50_ms", 1.2, "<=", "1 review/request, c1: {c} p50 ≤ 1.2× b p50"),
)


def http_row(
    system: str,
    w: Workload,
    load: dict,
    *,
    server_cpu_s: float,
    peak_rss_mb: float,
    other_cpu_s: float,
    loadavg: float,
) -> dict:
    seconds = load["duration_s"] or 1e-9
    return {
        "system": system,
        "workload": w.name,
        "texts_per_request": w.texts_per_request,
        "concurrency": w.concurrency,
        "requests": load["requests"],
        "ok": load["ok"],
        "errors": load["errors"],
        "seconds": round(seconds, 3),
        "rps": load["ok"] / seconds,
        "texts_per_s": load["ok"] * w.texts_per_request / seconds,
        "p50_ms": load["p50_ms"],
        "p95_ms": load["p95_ms"],
        "p99_ms": load["p99_ms"],
        "max_ms": load["max_ms"],
        "server_cpu_s": round(server_cpu_s, 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
        "generator": load["generator"],
        "generator_cpu_s": load["generator_cpu_s"],
        "other_cpu_s": round(other_cpu_s, 2),
        "loadavg_1m": round(loadavg, 2),
    }


def ceiling_row(system: str, workload: str, best: dict, peak_rss_mb: float) -> dict:
    """(d): a 'request' is one call (one batch, or several in one grouped call)."""
    seconds = best["seconds"]
    return {
        "system": system,
        "workload": workload,
        "texts_per_request": round(best["texts"] / best["batches"], 1),
        "concurrency": best["threads"],
        "intra_op_threads": best["intra_op_threads"],
        "requests": best["batches"],
        "ok": best["batches"],
        "errors": 0,
        "seconds": round(seconds, 3),
        "rps": best["batches"] / seconds,
        "texts_per_s": best["texts_per_s"],
        "p50_ms": best["p50_ms"],
        "p95_ms": best["p95_ms"],
        "p99_ms": best["p99_ms"],
        "server_cpu_s": round(best["cpu_s"], 2),
        "peak_rss_mb": round(peak_rss_mb, 1),
    }


# Another process using more than this share of a core during a run disturbs it.
DISTURBED_CORES = 0.2


def disturbed(rows: list[dict]) -> list[str]:
    """Runs during which other processes used the CPU (measured from /proc/stat)."""
    return [
        f"{r['system']}/{r['workload']} ({r['other_cpu_s'] / r['seconds']:.1f} cores)"
        for r in rows
        if r.get("other_cpu_s", 0) / max(r["seconds"], 1e-9) > DISTURBED_CORES
    ]


def progress_line(row: dict) -> str:
    line = (
        f"  {row['system']:>8} {row['workload']:<17} {row['texts_per_s']:9.1f} texts/s "
        f"{row['rps']:8.1f} req/s  p50 {row['p50_ms']:8.1f}  p99 {row['p99_ms']:8.1f} ms  "
        f"errors {row['errors']}"
    )
    if "mean_batch" in row:
        line += f"  (batches of {row['mean_batch']:.1f}, {row['mean_padding']:.0%} padding)"
    return line


# -- targets -------------------------------------------------------------------------------
def _find(rows: list[dict], system: str, workload: str) -> dict | None:
    return next((r for r in rows if r["system"] == system and r["workload"] == workload), None)


def _check(name: str, value: float | None, limit: float, op: str, shown: str) -> dict:
    if value is None:
        return {"target": name, "value": None, "limit": limit, "status": "n/a", "shown": "n/a"}
    ok = value >= limit if op == ">=" else value <= limit
    return {
        "target": name,
        "value": value,
        "limit": limit,
        "status": "PASS" if ok else "MISS",
        "shown": shown,
    }


def _percent(ratio: float) -> str:
    # One decimal: a whole percent would show 79.6% as "80%" beside a MISS.
    return f"{ratio:.1%}"


def _paired(pairs: list[dict], single: float | None) -> tuple[float, str]:
    """The median ratio of back-to-back pairs, shown with each pair and the single runs'."""
    median = statistics.median(p["ratio"] for p in pairs)
    each = " / ".join(_percent(p["ratio"]) for p in pairs)
    single_text = "n/a" if single is None else _percent(single)
    return median, (
        f"{_percent(median)} (median of back-to-back pairs: {each}; main runs: {single_text})"
    )


def targets(result: dict) -> list[dict]:
    """The issue's targets, for the default service and every tuned variant, from this run."""
    rows, systems = result["results"], {s["key"]: s for s in result["systems"]}
    checks = []
    for c in [k for k in systems if k == "c" or k.startswith("c-")]:
        variant = systems[c].get("model_variant", result.get("default_variant"))
        ceiling = "d" if variant == result.get("default_variant") else f"d-{variant}"
        for workload, other, metric, limit, op, text in _RATIO_TARGETS:
            other_system, _, other_workload = other.partition(":")
            other_system = ceiling if other_system == "d" else other_system
            mine = _find(rows, c, workload)
            theirs = _find(rows, other_system, other_workload or workload)
            value = None
            if mine and theirs and theirs[metric] > 0:
                value = mine[metric] / theirs[metric]
            shown = "n/a" if value is None else f"{value:.2f}×" if limit >= 1 else _percent(value)
            pairs = systems[c].get("pairs") if other_system == ceiling else None
            if pairs:  # (c) and (d) back to back: the median of those ratios decides
                value, shown = _paired(pairs, value)
            if metric == "p50_ms" and value is not None:
                shown = f"{value:.2f}× ({mine[metric]:.1f} vs {theirs[metric]:.1f} ms)"
            checks.append(
                {"system": c, **_check(text.format(c=c, d=ceiling), value, limit, op, shown)}
            )
        review = _find(rows, c, "review-c64")
        p99 = review["p99_ms"] if review else None
        checks.append(
            {
                "system": c,
                **_check(
                    f"1 review/request, c64: {c} p99 ≤ 150 ms",
                    p99,
                    150,
                    "<=",
                    f"{p99:.0f} ms" if p99 else "n/a",
                ),
            }
        )
        rss, ready = systems[c].get("peak_rss_mb"), systems[c].get("ready_s")
        checks.append(
            {
                "system": c,
                **_check(
                    f"{c} peak RSS ≤ 300 MB", rss, 300, "<=", f"{rss:.0f} MB" if rss else "n/a"
                ),
            }
        )
        checks.append(
            {
                "system": c,
                **_check(
                    f"{c} ready ≤ 3 s after start",
                    ready,
                    3.0,
                    "<=",
                    f"{ready:.2f} s" if ready else "n/a",
                ),
            }
        )
    return checks


# -- output --------------------------------------------------------------------------------
def _fmt(x: float, digits: int = 1) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def results_table(result: dict) -> str:
    lines = [
        "| system | workload | texts/s | req/s | p50 ms | p95 ms | p99 ms | errors "
        "| server CPU s | peak RSS MB | batch (padding) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in result["results"]:
        batching = f"{r['mean_batch']:.1f} ({r['mean_padding']:.0%})" if "mean_batch" in r else ""
        lines.append(
            f"| {r['system']} | {r['workload']} | {_fmt(r['texts_per_s'])} | {_fmt(r['rps'])} | "
            f"{_fmt(r['p50_ms'])} | {_fmt(r['p95_ms'])} | {_fmt(r['p99_ms'])} | {r['errors']} | "
            f"{r['server_cpu_s']:.1f} | {r['peak_rss_mb']:.0f} | {batching} |"
        )
    return "\n".join(lines)


def markdown(result: dict) -> str:
    m = result["machine"]
    s = result["settings"]
    quiet = "quiet (no other process used over 0.2 core during any run)"
    if result.get("busy_with"):
        quiet = "BUSY (other jobs running: numbers are from a loaded machine)"
    elif result.get("disturbed"):
        quiet = "disturbed during: " + ", ".join(result["disturbed"])
    code = result.get("service_code", {})
    parts = [
        f"Benchmark ({result['mode']} mode, {result['started']}), bundle `{result['bundle']['version']}`, "
        f"commit {code.get('commit')}.",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}, onnxruntime {m['libraries']['onnxruntime']}; machine was {quiet}.",
        f"Load: {s['generator']}, closed loop, {s['duration_s']:g} s per run after {s['warmup_s']:g} s "
        f"warm-up; (a): {s['seed_generator']} client, {s['seed_duration_s']:g} s counted after "
        f"{s['seed_warmup_s']:g} s in the same run; processes pinned (--pin): {s['pin']}; "
        "inference threads pinned by the service's rule (SENTIMENT_PIN_INFERENCE_THREADS=auto), "
        "(d)'s calling threads by the same rule.",
        "",
        "Systems:",
        *[
            f"- **{x['key']}**: {x['label']}"
            + (f" (ready in {x['ready_s']:.2f} s)" if x.get("ready_s") else "")
            for x in result["systems"]
        ],
        "",
        results_table(result),
        "",
        "d rows: in-process, a 'request' is one batch, latency is per batch, CPU is the timed "
        "loop's. batch (padding): the service's mean onnxruntime batch and padded share, from "
        "its /metrics.",
        "",
        *_pairs_lines(result),
        "Targets (ratios from this run):",
        "",
        "| target | result | status |",
        "|---|--:|---|",
        *[f"| {t['target']} | {t['shown']} | {t['status']} |" for t in result["targets"]],
    ]
    if code.get("start") != code.get("end"):
        parts[1:1] = [
            "**WARNING: service/ changed during this run**: systems started after the change "
            "ran other code (see `service_code` per system in the JSON); rerun before comparing."
        ]
    if result["failures"]:
        parts += [
            "",
            "Failures:",
            *[f"- {f['system']}: {f['error'][:300]}" for f in result["failures"]],
        ]
    return "\n".join(parts) + "\n"


def _pairs_lines(result: dict) -> list[str]:
    """The back-to-back pairs of (c) and (d), per service system, as markdown lines."""
    lines = []
    for system in result["systems"]:
        for k, p in enumerate(system.get("pairs") or [], 1):
            lines.append(
                f"| {system['key']} | {k} | {p['order']} | {p['c_texts_per_s']:,.0f} | "
                f"{p['d_texts_per_s']:,.0f} | {_percent(p['ratio'])} |"
            )
    if not lines:
        return []
    return [
        "Back to back on 64-review requests (each pair: the service's batch64-c4 run and "
        "(d)'s best configuration, the same duration, within a minute; the order alternates):",
        "",
        "| system | pair | order | service texts/s | (d) texts/s | ratio |",
        "|---|--:|---|--:|--:|--:|",
        *lines,
        "",
    ]


def chart(result: dict, path: Path) -> None:
    """Throughput (texts/s) and p99 latency per system, one column per workload, log scales."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["results"]
    workloads = [w["name"] for w in result["workloads"]]
    ceilings = {
        "review": "inproc-reviews",
        "batch64": "inproc-reviews",
        "sentence": "inproc-sentences",
    }
    fig, axes = plt.subplots(2, len(workloads), figsize=(3.6 * len(workloads), 6.4), squeeze=False)
    for col, name in enumerate(workloads):
        mine = [r for r in rows if r["workload"] == name]
        d_name = ceilings.get(name.split("-")[0])
        d_rows = [r for r in rows if r["workload"] == d_name and name != "review-c1"]
        for row, metric, title in ((0, "texts_per_s", "texts/s"), (1, "p99_ms", "p99 ms")):
            ax = axes[row][col]
            shown = sorted(mine + (d_rows if metric == "texts_per_s" else []), key=_order)
            shown = [r for r in shown if r[metric] > 0]  # nothing completed: no bar
            labels = [r["system"] for r in shown]
            values = [r[metric] for r in shown]
            colors = ["#c44" if r["system"].startswith("c") else "#888" for r in shown]
            ax.bar(labels, values, color=colors)
            if values:
                ax.set_yscale("log")
            ax.set_title(f"{name}\n{title}" if row == 0 else title, fontsize=9)
            ax.tick_params(axis="x", labelsize=8, rotation=45)
            for x, v in enumerate(values):
                ax.annotate(
                    _fmt(v, 1 if v < 10 else 0), (x, v), ha="center", va="bottom", fontsize=7
                )
    quiet = "" if result["quiet"] else " — machine BUSY"
    fig.suptitle(
        f"sentiment service benchmark ({result['mode']}{quiet}); c = this service", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _order(row: dict) -> tuple:
    return (row["system"][0], row["system"])


def write_all(result: dict, folder: Path, name: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = (folder / f"{name}{ext}" for ext in (".json", ".md", ".png"))
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    md_path.write_text(markdown(result))
    written = [json_path, md_path]
    try:
        chart(result, png_path)
        written.append(png_path)
    except ImportError:  # matplotlib is in the train extra; the serving install lacks it
        print("bench: matplotlib not installed, no chart")
    return written


def main(argv: list[str] | None = None) -> None:
    """Re-render a result's markdown and chart (targets recomputed) from its JSON."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.report", description=main.__doc__)
    parser.add_argument("result", type=Path, help="a bench/results/<name>.json")
    args = parser.parse_args(argv)
    result = json.loads(args.result.read_text())
    result["targets"] = targets(result)
    for path in write_all(result, args.result.parent, args.result.stem):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
