"""Benchmark harness: every system, every workload, one session, the same texts.

    python -m bench.run [--quick | --smoke] [--systems a,b,c,d,e] [--duration S]

Systems (docs/performance.md explains each):
  a  seed-style: FastAPI + Keras ``model.predict`` per request     (bench/baselines.py)
  b  FastAPI + onnxruntime per request, no batching                 (bench/baselines.py)
  c  this service, default settings; ``--variant`` adds tuned ones  (sentiment-serve)
  d  in-process ceiling: onnxruntime on length-sorted batches       (bench/ceiling.py)
  e  HTTP ceiling: same validation and response shape, no inference (bench/baselines.py)

Writes ``<out>/<name>.json``, ``.md`` and ``.png`` and prints the table and the targets.
It measures and reports; it never asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench import report
from bench.loadgen import have_wrk, run_load
from bench.procs import (
    PROJECT_ROOT,
    Server,
    busy_cpu_seconds,
    cpu_seconds,
    free_port,
    peak_rss_mb,
    reset_peak_rss,
    taskset,
)
from bench.workloads import WORKLOADS, Workload, by_name, sample_reviews, write_payloads

RESULTS_DIR = Path(__file__).resolve().parent / "results"


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


MODES = {
    "full": Mode(2000, 15, 3, 25, 8, 3.0, ("1,2", "32,64,128", "1,2"), "a,b,c,d,e"),
    "quick": Mode(1000, 4, 1, 8, 4, 0.8, ("1,2", "32,64,128", "1,2"), "a,b,c,d,e"),
    "smoke": Mode(128, 1, 0, 1, 0, 0.3, ("1", "64", "1"), "b,c,d,e"),
}

LABELS = {
    "a": "seed-style: Keras model.predict per request",
    "b": "ORT per request, no batching",
    "c": "this service, default settings",
    "d": "in-process ceiling: ORT on sorted batches, no HTTP",
    "e": "HTTP ceiling: validation + response, no inference",
}
_BASELINES = {"a": "seed", "b": "ort", "e": "echo"}


@dataclass
class System:
    key: str  # "a", "b", "c", "c-<variant>", "d", "e"
    label: str
    env: dict[str, str] = field(default_factory=dict)  # SENTIMENT_* overrides (c variants)
    uvicorn_workers: int = 0  # > 0: run the service under ``uvicorn --workers N``


def parse_variant(spec: str) -> System:
    """``NAME:key=value,...`` -> a service variant; keys are Settings fields or env names."""
    name, _, assignments = spec.partition(":")
    if not name or not assignments:
        raise ValueError(f"--variant {spec!r}: expected NAME:key=value[,key=value]")
    env, workers = {}, 0
    for item in assignments.split(","):
        key, _, value = item.partition("=")
        key = key.strip()
        if key == "uvicorn_workers":
            workers = int(value) if int(value) > 1 else 0  # 1: sentiment-serve itself
        else:
            env[key if key.startswith("SENTIMENT_") else "SENTIMENT_" + key.upper()] = value
    parts = [f"{k.removeprefix('SENTIMENT_').lower()}={v}" for k, v in env.items()]
    parts += [f"uvicorn_workers={workers}"] if workers else []
    label = "this service, " + (", ".join(parts) or "default settings")
    return System(f"c-{name}", label, env, workers)


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


# -- servers -----------------------------------------------------------------------------
def server_for(system: System, bundle_dir: Path, logs: Path, cpus: str | None) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMENT_")}
    # Every system serves the bundle resolved once at the start, even if a newer one lands.
    env |= {
        "SENTIMENT_MODEL_DIR": str(bundle_dir),
        "BENCH_BUNDLE_DIR": str(bundle_dir),
        "SENTIMENT_LOG_LEVEL": "warning",
        **system.env,
    }
    py = sys.executable
    if system.key in _BASELINES:
        command = [py, "-m", "bench.baselines", _BASELINES[system.key], "--port", str(port)]
    elif system.uvicorn_workers:
        command = [
            *(py, "-m", "uvicorn", "service.app:create_app", "--factory"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
            *("--no-access-log", "--no-server-header", "--workers", str(system.uvicorn_workers)),
        ]
    else:
        serve = Path(py).with_name("sentiment-serve")
        entry = [str(serve)] if serve.exists() else [py, "-m", "service.cli"]
        command = [*entry, "--host", "127.0.0.1", "--port", str(port)]
    return Server(system.key, taskset(cpus) + command, env, port, logs / f"{system.key}.log")


def prime(server: Server, payloads: dict[str, Path], timeout_s: float = 120.0) -> None:
    """A couple of requests of each shape, untimed: first-call costs are not the workload's.

    A 503 is retried for a while: with several uvicorn workers, the one that answered
    /health/ready may not be the one that gets the next request.
    """
    deadline = time.monotonic() + timeout_s
    for path in payloads.values():
        for body in path.read_text().split("\n")[:2]:
            request = urllib.request.Request(
                server.url + "/predict",
                data=body.encode(),
                headers={"content-type": "application/json"},
            )
            while True:
                try:
                    with urllib.request.urlopen(request, timeout=timeout_s) as response:
                        response.read()
                    break
                except urllib.error.HTTPError as exc:
                    if exc.code != 503 or time.monotonic() > deadline:
                        raise RuntimeError(f"{server.name}: priming got {exc.code}") from exc
                    time.sleep(0.1)


def wait_idle(server: Server, max_s: float = 60.0, step_s: float = 0.25) -> float:
    """Wait (bounded) until the server uses under 10% of a core; returns seconds waited."""
    started = time.monotonic()
    before = cpu_seconds(server.pids())
    while time.monotonic() - started < max_s:
        time.sleep(step_s)
        now = cpu_seconds(server.pids())
        if now - before < 0.1 * step_s:
            break
        before = now
    return time.monotonic() - started


def measure_http(
    system: System, server: Server, workloads: list[Workload], payloads: dict, opts: dict
) -> list[dict]:
    rows = []
    slow = system.key == "a"
    generator = opts["seed_generator"] if slow else opts["generator"]
    duration = opts["seed_duration_s"] if slow else opts["duration_s"]
    warmup = opts["seed_warmup_s"] if slow else opts["warmup_s"]
    for w in workloads:
        load = {
            "concurrency": w.concurrency,
            "generator": generator,
            "cpus": opts["generator_cpus"],
        }
        if generator == "wrk" and warmup > 0:
            run_load(server.url, payloads[w.kind], duration_s=warmup, **load)
            warmup_in_run = 0.0
        else:
            warmup_in_run = warmup  # the async client's own warm-up window
        # Requests a generator gave up on may still be computing: start from an idle server.
        wait_idle(server)
        reset_peak_rss(server.pids())
        start: dict = {}  # CPU counters when the counted window opens

        def read_start(start: dict = start) -> None:
            start |= {"cpu": cpu_seconds(server.pids()), "busy": busy_cpu_seconds()}
            start["loadavg"] = os.getloadavg()[0]

        timer = threading.Timer(warmup_in_run, read_start)
        timer.start()
        result = run_load(
            server.url, payloads[w.kind], duration_s=duration, warmup_s=warmup_in_run, **load
        )
        timer.join()
        server_cpu = cpu_seconds(server.pids()) - start["cpu"]
        busy = busy_cpu_seconds() - start["busy"]
        rows.append(
            report.http_row(
                system.key,
                w,
                result,
                server_cpu_s=server_cpu,
                peak_rss_mb=peak_rss_mb(server.pids()),
                other_cpu_s=max(0.0, busy - server_cpu - result["generator_cpu_s"]),
                loadavg=start["loadavg"],
            )
        )
        print(report.progress_line(rows[-1]), flush=True)
        if not server.alive():
            raise RuntimeError(f"{system.key} died during {w.name}; {server.tail()}")
    return rows


def run_http_system(
    system: System, bundle_dir: Path, workloads: list[Workload], payloads: dict, opts: dict
) -> tuple[dict, list[dict]]:
    server = server_for(system, bundle_dir, opts["logs"], opts["server_cpus"])
    info = {"key": system.key, "label": system.label, "env": system.env, "kind": "http"}
    info |= {"command": " ".join(server.command), "uvicorn_workers": system.uvicorn_workers or 1}
    try:
        server.start(timeout_s=180 if system.key == "a" else 60)
        info |= {"ready_s": server.ready_s, "startup_peak_rss_mb": server.startup_peak_rss_mb}
        prime(server, payloads)
        rows = measure_http(system, server, workloads, payloads, opts)
    finally:
        server.stop()
    info["peak_rss_mb"] = max(
        [info.get("startup_peak_rss_mb", 0)] + [r["peak_rss_mb"] for r in rows]
    )
    return info, rows


def run_ceiling(bundle_dir: Path, payloads: dict, opts: dict, variant: str) -> tuple[dict, list]:
    out = opts["logs"] / f"ceiling-{variant}.json"
    intra, batches, threads = opts["ceiling_grid"]
    configs = len(intra.split(",")) * len(batches.split(",")) * len(threads.split(","))
    command = [
        *(sys.executable, "-m", "bench.ceiling", str(bundle_dir)),
        *("--reviews", str(payloads["review"]), "--sentences", str(payloads["sentence"])),
        *("--variant", variant, "--intra-op", intra, "--batch-sizes", batches),
        *("--threads", threads, "--budget", str(opts["ceiling_budget_s"]), "--out", str(out)),
    ]
    started = time.monotonic()
    busy0 = busy_cpu_seconds()
    subprocess.run(
        taskset(opts["server_cpus"]) + command,
        check=True,
        cwd=PROJECT_ROOT,
        timeout=configs * (opts["ceiling_budget_s"] + 30) + 120,
    )
    data = json.loads(out.read_text())
    key = "d" if variant == "float" else f"d-{variant}"
    info = {
        "key": key,
        "label": LABELS["d"] + ("" if variant == "float" else f" ({variant})"),
        "kind": "in-process",
        "variant": variant,
        "sweep": data["sweep"],
        "best": data["best"],
        "peak_rss_mb": data["peak_rss_mb"],
        "seconds": time.monotonic() - started,
        "other_cpu_s": max(
            0.0, busy_cpu_seconds() - busy0 - sum(r["cpu_s"] for r in data["sweep"])
        ),
    }
    rows = [report.ceiling_row(key, "inproc-reviews", data["reviews"], data["peak_rss_mb"])]
    if "sentences" in data:
        rows.append(
            report.ceiling_row(key, "inproc-sentences", data["sentences"], data["peak_rss_mb"])
        )
    for row in rows:
        print(report.progress_line(row), flush=True)
    return info, rows


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
        "int8:model_variant=int8 or w1:inference_workers=1 (repeatable)",
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
    parser.add_argument("--name", help="output file stem (default: latest, or smoke)")
    return parser.parse_args(argv)


def options(args: argparse.Namespace, mode: Mode, logs: Path) -> dict:
    cores = os.cpu_count() or 1
    split = args.pin == "split" and cores > 1
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if have_wrk() else "async"
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
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise SystemExit(f"unknown systems {unknown}; known: {sorted(known)}")
    # Cheap ones first; (a) imports TensorFlow and is slowest, so it goes last.
    order = {"d": 0, "e": 1, "b": 2, "c": 3, "a": 9}
    return sorted((known[k] for k in keys), key=lambda s: (order.get(s.key[0], 5), s.key))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    mode = MODES[mode_name]
    workloads = by_name(args.workloads.split(",")) if args.workloads else list(WORKLOADS)
    systems = systems_from(args, mode)

    from service.settings import Settings

    # One bundle for every system: --bundle, else what the service would serve by default.
    bundle_dir = (args.bundle or Settings().resolved_model_dir()).resolve()
    started = time.monotonic()
    others = busy_with()
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
                    info, got = run_ceiling(bundle_dir, payloads, opts, "float")
                else:
                    info, got = run_http_system(system, bundle_dir, workloads, payloads, opts)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                print(f"bench: {system.key} FAILED: {exc}", flush=True)
                failures.append({"system": system.key, "error": str(exc)[-3000:]})
                continue
            infos.append(info)
            rows.extend(got)
        # The int8 ceiling too, when an int8 service variant is compared.
        if any(s.env.get("SENTIMENT_MODEL_VARIANT") == "int8" for s in systems) and any(
            s.key == "d" for s in systems
        ):
            info, got = run_ceiling(bundle_dir, payloads, opts, "int8")
            infos.append(info)
            rows.extend(got)

    result = {
        "mode": mode_name,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_s": round(time.monotonic() - started, 1),
        "machine": machine_info(),
        "quiet": not others and not busy_with(),
        "busy_with": sorted(set(others + busy_with())),
        "bundle": {"dir": str(bundle_dir), "version": bundle_dir.name},
        "settings": {k: v for k, v in opts.items() if k != "logs"},
        "workloads": [w.__dict__ for w in workloads],
        "systems": infos,
        "results": rows,
        "failures": failures,
    }
    result["targets"] = report.targets(result)
    name = args.name or ("smoke" if args.smoke else "latest")
    paths = report.write_all(result, args.out, name)
    print()
    print(report.markdown(result))
    print("bench: wrote " + ", ".join(str(p) for p in paths))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
