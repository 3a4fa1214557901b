"""Benchmark harness: every system, every workload, one session, the same texts.

    python -m bench.run [--quick | --smoke] [--systems a,b,c,d,e] [--duration S]

Systems (docs/performance.md explains each):
  a  seed-style: FastAPI + Keras ``model.predict`` per request     (bench/baselines.py)
  b  FastAPI + onnxruntime per request, no batching                 (bench/baselines.py)
  c  this service, default settings; ``--variant`` adds tuned ones  (sentiment-serve)
  d  in-process ceiling: onnxruntime on length-sorted batches       (bench/ceiling.py)
  e  HTTP ceiling: same validation and response shape, no inference (bench/baselines.py)

After the main runs, each service system and (d)'s best configuration run back to back
on 64-review requests a few times (``run_pairs``: this machine's speed drifts from minute
to minute); the median of those ratios decides the target against (d).

Writes ``<out>/<name>.json``, ``.md`` and ``.png`` and prints the table and the targets.
It measures and reports; it never asserts a timing.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import report
from bench.loadgen import have_wrk, pick_generator
from bench.procs import code_fingerprint, git_commit
from bench.systems import (
    DEFAULT_VARIANT,
    LABELS,
    System,
    parse_variant,
    run_ceiling,
    run_http_system,
    run_pairs,
)
from bench.workloads import WORKLOADS, Workload, by_name, sample_reviews, write_payloads
from service.settings import Settings

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PAIRED_WORKLOAD = "batch64-c4"  # the workload of the target against (d)


@dataclass(frozen=True)
class Mode:
    reviews: int  # distinct reviews sampled from the IMDB test set
    duration_s: float  # timed seconds per (system, workload)
    warmup_s: float  # untimed load before each timed run
    # (a) answers a few requests a second: its own client window, warm-up included in the
    # run (at concurrency 64 the first answers take seconds), and a bounded budget.
    seed_duration_s: float
    seed_warmup_s: float
    ceiling_budget_s: float  # timed seconds per (d) configuration
    ceiling_grid: tuple[str, str, str]  # intra-op threads, batch sizes, calling threads
    systems: str
    # (c) and (d) back to back on 64-review requests (bench/systems.py), an even number
    # of times where there is time: each order as often, in case going first matters.
    pair_rounds: int


MODES = {
    # (d) tries small batches too: sorted batches of 4-16 beat 64 on this model (cache).
    "full": Mode(2000, 15, 3, 25, 8, 2.5, ("1,2", "4,8,16,32,64,128", "1,2"), "a,b,c,d,e", 4),
    "quick": Mode(1000, 4, 1, 6, 3, 0.6, ("1,2", "8,16,64", "1,2"), "a,b,c,d,e", 2),
    "smoke": Mode(128, 1, 0, 1, 0, 0.3, ("1", "64", "1"), "b,c,d,e", 1),
}


def machine_info() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    libs = {}
    for lib in ("onnxruntime", "fastapi", "uvicorn", "pydantic", "tensorflow-cpu", "keras"):
        try:
            libs[lib] = version(lib)
        except PackageNotFoundError:
            libs[lib] = None
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True) if have_wrk() else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1e6, 1),
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "libraries": libs,
        "wrk": (wrk.stdout or wrk.stderr).split("\n")[0].strip() if wrk else None,
    }


def busy_with() -> list[str]:
    """Other heavy jobs on the machine (a training run), to label the numbers honestly."""
    found = subprocess.run(["pgrep", "-af", "training.train"], capture_output=True, text=True)
    return [ln for ln in found.stdout.splitlines() if "pgrep" not in ln]


# -- main --------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="short runs (under 3 minutes)")
    size.add_argument("--smoke", action="store_true", help="tiny run that proves it works (CI)")
    parser.add_argument("--systems", help="comma list of a,b,c,d,e and c-<variant> names")
    parser.add_argument("--workloads", help="comma list of " + ",".join(w.name for w in WORKLOADS))
    parser.add_argument("--duration", type=float, help="timed seconds per run (override)")
    parser.add_argument("--warmup", type=float, help="untimed seconds before each run")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:key=value,...",
        help="also run the service with these settings as system c-NAME, e.g. "
        "int8:model_variant=int8 or w2:workers=2 (repeatable)",
    )
    parser.add_argument("--generator", choices=["auto", "wrk", "async"], default="auto")
    parser.add_argument(
        "--pin",
        choices=["none", "split"],
        default="none",
        help="none: server and generator share all cores (default); "
        "split: server on CPU 0, generator on the last CPU",
    )
    parser.add_argument("--bundle", type=Path, help="model bundle (default: the service's)")
    parser.add_argument("--reviews", type=int, help="distinct reviews to sample")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--name", help="output file stem (default: latest; quick, smoke)")
    return parser.parse_args(argv)


def options(args: argparse.Namespace, mode: Mode, logs: Path) -> dict:
    cores = os.cpu_count() or 1
    split = args.pin == "split" and cores > 1
    generator = pick_generator(args.generator)
    duration = args.duration if args.duration is not None else mode.duration_s
    return {
        "duration_s": duration,
        "seed_duration_s": min(duration, mode.seed_duration_s)
        if args.duration is not None
        else mode.seed_duration_s,
        "seed_warmup_s": mode.seed_warmup_s,
        "seed_generator": "async",
        "warmup_s": args.warmup if args.warmup is not None else mode.warmup_s,
        "ceiling_budget_s": mode.ceiling_budget_s,
        "ceiling_grid": mode.ceiling_grid,
        "generator": generator,
        "server_cpus": "0" if split else None,
        "generator_cpus": str(cores - 1) if split else None,
        "pin": args.pin,
        "logs": logs,
    }


def systems_from(args: argparse.Namespace, mode: Mode) -> list[System]:
    variants = [parse_variant(v) for v in args.variant]
    keys = (args.systems or mode.systems).split(",")
    keys += [v.key for v in variants if v.key not in keys]
    known = {k: System(k, LABELS[k]) for k in LABELS} | {v.key: v for v in variants}
    known["d"].label += f" ({DEFAULT_VARIANT} model)"
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise SystemExit(f"unknown systems {unknown}; known: {sorted(known)}")
    if "d" in keys:  # a ceiling for each model variant a service variant runs
        for variant in sorted({known[k].model_variant for k in keys} - {DEFAULT_VARIANT}):
            label = f"{LABELS['d']} ({variant} model)"
            known[f"d-{variant}"] = System(
                f"d-{variant}", label, {"SENTIMENT_MODEL_VARIANT": variant}
            )
            keys.append(f"d-{variant}")
    # Cheap ones first; (a) imports TensorFlow and is slowest, so it goes last.
    order = {"d": 0, "e": 1, "b": 2, "c": 3, "a": 9}
    return sorted((known[k] for k in keys), key=lambda s: (order.get(s.key[0], 5), s.key))


def add_pairs(
    systems: list[System],
    infos: list[dict],
    workloads: list[Workload],
    bundle_dir: Path,
    payloads: dict,
    opts: dict,
    rounds: int,
) -> list[dict]:
    """Each service system against its ceiling, back to back (``run_pairs``); failures."""
    batch = next((w for w in workloads if w.name == PAIRED_WORKLOAD), None)
    done = {info["key"]: info for info in infos}
    failures = []
    for system in systems:
        ceiling = "d" if system.model_variant == DEFAULT_VARIANT else f"d-{system.model_variant}"
        if batch is None or rounds < 1 or not system.key.startswith("c"):
            continue
        if system.key not in done or ceiling not in done:
            continue
        print(f"bench: {system.key} and {ceiling} back to back on {batch.name}", flush=True)
        try:
            done[system.key]["pairs"] = run_pairs(
                system, done[ceiling], batch, bundle_dir, payloads, opts, rounds
            )
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"bench: {system.key} pairs FAILED: {exc}", flush=True)
            failures.append({"system": f"{system.key} pairs", "error": str(exc)[-3000:]})
    return failures


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every ``finally``: servers are stopped


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    args = parse_args(argv)
    mode_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    mode = MODES[mode_name]
    workloads = by_name(args.workloads.split(",")) if args.workloads else list(WORKLOADS)
    systems = systems_from(args, mode)

    # One bundle for every system: --bundle, else what the service would serve by default.
    bundle_dir = (args.bundle or Settings().resolved_model_dir()).resolve()
    started = time.monotonic()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")  # wall clock, for the report
    others = busy_with()
    code_at_start = code_fingerprint()
    print(f"bench: {mode_name} mode, bundle {bundle_dir.name}, systems {[s.key for s in systems]}")
    if others:
        print(f"bench: WARNING, the machine is busy (numbers are from a loaded machine): {others}")

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        logs = Path(tmp)
        opts = options(args, mode, logs)
        payloads = write_payloads(sample_reviews(args.reviews or mode.reviews), logs / "payloads")
        infos, rows, failures = [], [], []
        for system in systems:
            try:
                if system.key.startswith("d"):
                    info, got = run_ceiling(bundle_dir, payloads, opts, system)
                else:
                    info, got = run_http_system(system, bundle_dir, workloads, payloads, opts)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                print(f"bench: {system.key} FAILED: {exc}", flush=True)
                failures.append({"system": system.key, "error": str(exc)[-3000:]})
                continue
            infos.append(info)
            rows.extend(got)
        failures += add_pairs(
            systems, infos, workloads, bundle_dir, payloads, opts, mode.pair_rounds
        )

    result = {
        "mode": mode_name,
        "started": started_at,
        "wall_s": round(time.monotonic() - started, 1),
        "machine": machine_info(),
        "quiet": False,  # set below
        "busy_with": sorted(set(others + busy_with())),
        "bundle": {"dir": str(bundle_dir), "version": bundle_dir.name},
        "service_code": {"commit": git_commit(), "start": code_at_start, "end": code_fingerprint()},
        "default_variant": DEFAULT_VARIANT,
        "settings": {k: v for k, v in opts.items() if k != "logs"},
        "workloads": [w.__dict__ for w in workloads],
        "systems": infos,
        "results": rows,
        "failures": failures,
    }
    result["disturbed"] = report.disturbed(rows)
    result["quiet"] = not result["busy_with"] and not result["disturbed"]
    result["targets"] = report.targets(result)
    name = args.name or {"full": "latest"}.get(mode_name, mode_name)  # smoke, quick
    paths = report.write_all(result, args.out, name)
    print()
    print(report.markdown(result))
    print("bench: wrote " + ", ".join(str(p) for p in paths))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
