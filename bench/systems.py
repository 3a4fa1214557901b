"""The systems under test: start each one, drive every workload at it, collect the rows.

HTTP systems (a, b, c and its variants, e) run as their own uvicorn process and are
driven by the load generator; (d) runs ``bench.ceiling`` in its own process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench import report
from bench.ceiling import CONFIG_KEYS
from bench.loadgen import run_load
from bench.procs import (
    PROJECT_ROOT,
    Server,
    busy_cpu_seconds,
    code_fingerprint,
    cpu_seconds,
    free_port,
    peak_rss_mb,
    reset_peak_rss,
    taskset,
)
from bench.workloads import Workload
from service.settings import Settings

# The model file the service runs unless SENTIMENT_MODEL_VARIANT says otherwise.
DEFAULT_VARIANT = Settings.model_fields["model_variant"].default

LABELS = {
    "a": "seed-style: Keras model.predict per request",
    "b": f"ORT per request, no batching ({DEFAULT_VARIANT} model)",
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
    tree: Path | None = None  # another checkout's service (c variants: ``tree=PATH``)

    @property
    def model_variant(self) -> str:
        return self.env.get("SENTIMENT_MODEL_VARIANT", DEFAULT_VARIANT)


def parse_variant(spec: str) -> System:
    """``NAME:key=value,...`` -> a service variant; keys are Settings fields or env names,
    and ``tree=PATH`` serves another checkout's code (e.g. a ``git worktree`` of an older
    commit) with the same bundle, for old-versus-new comparisons."""
    name, _, assignments = spec.partition(":")
    if not name or not assignments:
        raise ValueError(f"--variant {spec!r}: expected NAME:key=value[,key=value]")
    env, tree = {}, None
    for item in _assignments(assignments):
        key, _, value = item.partition("=")
        key = key.strip()
        if key == "tree":
            tree = Path(value).resolve()
            continue
        env[key if key.startswith("SENTIMENT_") else "SENTIMENT_" + key.upper()] = value
    parts = [f"{k.removeprefix('SENTIMENT_').lower()}={v}" for k, v in env.items()]
    parts += [f"code from {tree}"] if tree else []
    return System(f"c-{name}", "this service, " + ", ".join(parts), env, tree)


def _assignments(text: str) -> list[str]:
    """``a=1,b=x,y`` -> ``["a=1", "b=x,y"]``: a comma before a word without ``=`` belongs
    to the value (``models=sentiment-general,sentiment-lstm``)."""
    items: list[str] = []
    for part in text.split(","):
        if "=" in part or not items:
            items.append(part)
        else:
            items[-1] += "," + part
    return items


# -- servers -----------------------------------------------------------------------------
def server_for(system: System, bundle_dir: Path, logs: Path, cpus: str | None) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMENT_")}
    # Every system serves the bundle resolved once at the start, even if a newer one lands.
    # A variant that names the models to load (``models=a,b``) serves those, each at its
    # promoted version, with the bundle's model answering by default.
    env |= {
        "SENTIMENT_MODEL_DIR": str(bundle_dir),
        "BENCH_BUNDLE_DIR": str(bundle_dir),
        "SENTIMENT_LOG_LEVEL": "warning",
        "SENTIMENT_LAME_DUCK_S": "0",  # stopped by SIGTERM: no load balancer to wait for
        **system.env,
    }
    if "SENTIMENT_MODELS" in system.env:
        del env["SENTIMENT_MODEL_DIR"]
        env.setdefault("SENTIMENT_DEFAULT_MODEL", bundle_dir.parent.name)
    py = sys.executable
    cwd = PROJECT_ROOT
    if system.key in _BASELINES:
        command = [py, "-m", "bench.baselines", _BASELINES[system.key], "--port", str(port)]
    elif system.tree is not None:  # that checkout's packages first on the path
        cwd, env["PYTHONPATH"] = system.tree, str(system.tree)
        command = [py, "-m", "service.cli", "--host", "127.0.0.1", "--port", str(port)]
    else:
        serve = Path(py).with_name("sentiment-serve")
        entry = [str(serve)] if serve.exists() else [py, "-m", "service.cli"]
        command = [*entry, "--host", "127.0.0.1", "--port", str(port)]
    log = logs / f"{system.key}.log"
    return Server(system.key, taskset(cpus) + command, env, port, log, cwd=cwd)


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


_BATCH_METRICS = {
    "sentiment_batch_size_sum": "texts",
    "sentiment_batch_size_count": "batches",
    "sentiment_padding_ratio_sum": "padding",
    "sentiment_inference_seconds_sum": "inference_s",
}


def batch_counters(server: Server) -> dict[str, float] | None:
    """The service's own batch counters from /metrics (None for the baselines)."""
    try:
        with urllib.request.urlopen(server.url + "/metrics", timeout=5) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in _BATCH_METRICS:
            found[_BATCH_METRICS[name]] = float(value)
    return found if len(found) == len(_BATCH_METRICS) else None


def batch_stats(before: dict | None, after: dict | None) -> dict:
    """Mean batch size, padding share and inference time over one run."""
    if not before or not after or after["batches"] <= before["batches"]:
        return {}
    d = {k: after[k] - before[k] for k in after}
    return {
        "batches": int(d["batches"]),
        "mean_batch": round(d["texts"] / d["batches"], 2),
        "mean_padding": round(d["padding"] / d["batches"], 3),
        "inference_s": round(d["inference_s"], 2),
    }


def measure_http(
    system: System, server: Server, workloads: list[Workload], payloads: dict, opts: dict
) -> list[dict]:
    rows = []
    slow = system.key == "a"
    generator = opts["seed_generator"] if slow else opts["generator"]
    duration = opts["seed_duration_s"] if slow else opts["duration_s"]
    warmup = opts["seed_warmup_s"] if slow else opts["warmup_s"]
    # With several worker processes /metrics answers for whichever one gets the request.
    one_process = system.env.get("SENTIMENT_WORKERS", "1") == "1"

    def counters() -> dict | None:
        return batch_counters(server) if one_process else None

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
            start |= {"loadavg": os.getloadavg()[0], "batching": counters()}

        timer = threading.Timer(warmup_in_run, read_start)
        timer.start()
        result = run_load(
            server.url, payloads[w.kind], duration_s=duration, warmup_s=warmup_in_run, **load
        )
        timer.join()
        batching = batch_stats(start["batching"], counters())
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
            | batching
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
    info["model_variant"] = system.model_variant
    info["service_code"] = code_fingerprint()  # the code this server was started with
    info["command"] = " ".join(server.command)
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


def run_ceiling(bundle_dir: Path, payloads: dict, opts: dict, system: System) -> tuple[dict, list]:
    variant, key = system.model_variant, system.key
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
    info = {
        "key": key,
        "label": system.label,
        "kind": "in-process",
        "model_variant": variant,
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
    for row in rows:  # the whole sweep's share, spread over its time
        row["other_cpu_s"] = round(info["other_cpu_s"] * row["seconds"] / info["seconds"], 2)
    for row in rows:
        print(report.progress_line(row), flush=True)
    return info, rows


def ceiling_config(best: dict) -> str:
    """(d)'s best configuration, as ``bench.ceiling --config`` takes it."""
    return ",".join(str(best[k]) for k in CONFIG_KEYS)


def run_ceiling_once(
    bundle_dir: Path, payloads: dict, opts: dict, variant: str, config: str
) -> dict:
    """(d) in one configuration for as long as an HTTP run lasts: texts/s and CPU."""
    out = opts["logs"] / f"ceiling-once-{variant}.json"
    command = [
        *(sys.executable, "-m", "bench.ceiling", str(bundle_dir)),
        *("--reviews", str(payloads["review"]), "--variant", variant, "--config", config),
        *("--budget", str(opts["duration_s"]), "--out", str(out)),
    ]
    subprocess.run(
        taskset(opts["server_cpus"]) + command,
        check=True,
        cwd=PROJECT_ROOT,
        timeout=opts["duration_s"] + 180,
    )
    return json.loads(out.read_text())["best"]


def run_pairs(
    system: System,
    ceiling: dict,
    workload: Workload,
    bundle_dir: Path,
    payloads: dict,
    opts: dict,
    rounds: int,
) -> list[dict]:
    """(c) on ``workload`` and (d)'s best configuration, back to back, ``rounds`` times.

    This machine's speed moves by 10-30% from minute to minute, and the main runs of (c)
    and (d) are minutes apart; (d)'s figure is also the best of a sweep of short runs,
    which favours a run that caught a fast moment. Each pair measures both for the same
    duration within a minute, alternating which goes first, so a ratio compares like
    with like.
    """
    config = ceiling_config(ceiling["best"])
    pairs = []
    for k in range(rounds):
        c_first = k % 2 == 1
        if c_first:
            c_row = run_http_system(system, bundle_dir, [workload], payloads, opts)[1][0]
        d_row = run_ceiling_once(bundle_dir, payloads, opts, system.model_variant, config)
        if not c_first:
            c_row = run_http_system(system, bundle_dir, [workload], payloads, opts)[1][0]
        pair = {
            "order": "c,d" if c_first else "d,c",
            "c_texts_per_s": round(c_row["texts_per_s"], 1),
            "d_texts_per_s": round(d_row["texts_per_s"], 1),
            "ratio": c_row["texts_per_s"] / d_row["texts_per_s"],
            "c_errors": c_row["errors"],
        }
        print(
            f"  pair {k + 1}/{rounds} ({pair['order']}): {system.key} {pair['c_texts_per_s']:.0f} "
            f"vs d {pair['d_texts_per_s']:.0f} texts/s = {pair['ratio']:.0%}",
            flush=True,
        )
        pairs.append(pair)
    return pairs
