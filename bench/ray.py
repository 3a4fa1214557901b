"""The service on Ray Serve against one process, on this machine.

    python -m bench.ray [--parts serve,hop,bulk] [--duration 10] [--replicas 1,2]

``serve``: one ``sentiment-serve`` process, then a local two-node Ray cluster
(bench/ray_cluster.py) with the service deployed by ``service.ray_serve`` at each replica
count; each first idle (the CPU it burns doing nothing), then under load. ``hop``: two
trivial deployments that isolate one Ray hop (bench/ray_echo.py: the proxy to a replica,
and a replica to another through a handle). The same wrk load and IMDB bodies as
``bench.run``; CPU is every process of the system (for Ray: both nodes, GCS, raylets,
agents, proxy, controller and replicas). ``bulk``: ``sentiment-score`` in process against
``--ray`` (bench/ray_bulk.py).

On one 2-core machine every replica, node and the load generator share the same two
cores: these figures show what Ray costs, never what it scales to.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench import ray_bulk
from bench.loadgen import have_wrk, run_load
from bench.procs import PROJECT_ROOT, busy_cpu_seconds, cpu_seconds, free_port, git_commit
from bench.ray_cluster import LocalRayCluster
from bench.systems import System, prime, server_for
from bench.workloads import Workload, by_name, sample_reviews, write_payloads
from service.settings import Settings

RESULTS = PROJECT_ROOT / "bench" / "results"
# Short bodies: what is measured is the hop, not the work behind it.
HOP_WORKLOADS = (
    Workload("sentence-c1", "sentence", 1, 1, "1 short sentence/request, concurrency 1"),
    Workload("sentence-c64", "sentence", 1, 64, "1 short sentence/request, concurrency 64"),
)


def measure(url: str, pids, kind_path: Path, concurrency: int, texts: int, opts) -> dict:
    """A wrk warm-up, then a timed run: rates, latency and the system's CPU per request."""
    run_load(url, kind_path, concurrency=concurrency, duration_s=opts.warmup)
    cpu0, busy0 = cpu_seconds(pids()), busy_cpu_seconds()
    result = run_load(url, kind_path, concurrency=concurrency, duration_s=opts.duration)
    cpu = cpu_seconds(pids()) - cpu0
    busy = busy_cpu_seconds() - busy0
    ok = max(result["ok"], 1)
    return {
        "requests_per_s": round(result["ok"] / result["duration_s"], 1),
        "texts_per_s": round(result["ok"] * texts / result["duration_s"], 1),
        "p50_ms": round(result["p50_ms"], 2),
        "p99_ms": round(result["p99_ms"], 2),
        "errors": result["errors"],
        "system_cpu_ms_per_request": round(1000 * cpu / ok, 3),
        "machine_busy_cores": round(busy / result["duration_s"], 2),
    }


def idle(name: str, pids, seconds: float) -> dict:
    """The system's CPU with no load at all: what it costs to keep running."""
    cpu0, busy0, t0 = cpu_seconds(pids()), busy_cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    row = {
        "system": name,
        "workload": "idle",
        "system_busy_cores": round((cpu_seconds(pids()) - cpu0) / elapsed, 3),
        "machine_busy_cores": round((busy_cpu_seconds() - busy0) / elapsed, 2),
    }
    print(json.dumps(row), flush=True)
    return row


def run_workloads(name: str, url: str, pids, payloads: dict, opts) -> list[dict]:
    rows = [idle(name, pids, opts.idle)]
    for w in by_name(opts.workloads):
        row = {"system": name, "workload": w.name}
        row |= measure(url, pids, payloads[w.kind], w.concurrency, w.texts_per_request, opts)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def one_process(bundle: Path, payloads: dict, logs: Path, opts) -> list[dict]:
    server = server_for(System("c", "this service, defaults"), bundle, logs, None)
    try:
        server.start(timeout_s=120)
        prime(server, payloads)
        return run_workloads("one process", server.url, server.pids, payloads, opts)
    finally:
        server.stop()


def serve_config(replicas: int, port: int) -> dict:
    from service.ray_serve.deploy import load_config

    config = load_config()
    config["http_options"]["port"] = port
    (deployment,) = config["applications"][0]["deployments"]
    deployment.pop("autoscaling_config")
    deployment["num_replicas"] = replicas
    deployment["ray_actor_options"] = {"num_cpus": 1}
    return config


def on_ray(cluster: LocalRayCluster, bundle: Path, payloads: dict, opts) -> list[dict]:
    from service.ray_serve.deploy import deploy

    port, rows = free_port(), []
    os.environ["SENTIMENT_MODEL_DIR"] = str(bundle)  # the replicas' bundle (their env)
    url = f"http://127.0.0.1:{port}"
    for replicas in opts.replicas:
        deploy(cluster.address, serve_config(replicas, port), {})
        wait_ready(url, replicas)
        pids = lambda: cluster.head.processes() + cluster.worker.processes()  # noqa: E731
        rows += run_workloads(f"Ray Serve, {replicas} replica(s)", url, pids, payloads, opts)
    return rows


def hops(cluster: LocalRayCluster, payloads: dict, opts) -> list[dict]:
    """Echo (proxy → replica) against Forward (proxy → replica → replica)."""
    from ray import serve

    from bench import ray_echo

    port = _proxy_port()
    serve.run(ray_echo.echo, name="echo", route_prefix="/echo", blocking=False)
    serve.run(ray_echo.forward, name="forward", route_prefix="/forward", blocking=False)
    time.sleep(5)  # (the apps are trivial: up within a second or two)
    pids = lambda: cluster.head.processes() + cluster.worker.processes()  # noqa: E731
    rows = []
    for app in ("echo", "forward"):
        for w in HOP_WORKLOADS:
            url = f"http://127.0.0.1:{port}/{app}"
            row = {"system": f"Ray {app}", "workload": w.name}
            row |= measure(url, pids, payloads[w.kind], w.concurrency, 1, opts)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def _proxy_port() -> int:
    from ray import serve

    return int(serve.context._get_global_client().http_config.port)


def wait_ready(url: str, replicas: int, timeout_s: float = 180) -> None:
    import urllib.request

    from ray import serve

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app = serve.status().applications.get("sentiment")
        states = app.deployments["SentimentService"].replica_states if app else {}
        up = sum(n for s, n in states.items() if str(s).endswith("RUNNING"))
        try:
            with urllib.request.urlopen(url + "/health/ready", timeout=5) as r:
                if r.status == 200 and up == replicas and len(states) == 1:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{replicas} replicas not ready within {timeout_s} s")


def main(argv: list[str] | None = None) -> dict:
    opts = options(argv)
    if not have_wrk() and {"serve", "hop"} & set(opts.parts):
        raise SystemExit("bench.ray needs wrk (Debian package wrk)")
    bundle = (opts.bundle or Settings().resolved_model_dir()).resolve()
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    payloads = write_payloads(sample_reviews(opts.reviews), work / "payloads")
    started = time.time()
    rows = one_process(bundle, payloads, work, opts) if "serve" in opts.parts else []
    with LocalRayCluster(cpus=4) as cluster:
        from service.ray_serve.deploy import connect

        connect(cluster.address)
        if "serve" in opts.parts:
            rows += on_ray(cluster, bundle, payloads, opts)
        if "hop" in opts.parts:
            rows += hops(cluster, payloads, opts)
        if "bulk" in opts.parts:
            rows += ray_bulk.compare(cluster.address, opts.bulk_reviews, 2, work, bundle)
    results = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "commit": git_commit(),
        "cpus": os.cpu_count(),
        "bundle": {"dir": str(bundle), "version": bundle.name},
        "duration_s": opts.duration,
        "rows": rows,
    }
    opts.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {opts.out}")
    return results


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="serve,hop,bulk", help="what to measure")
    parser.add_argument("--bundle", type=Path, help="model bundle (default: the service's)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per run")
    parser.add_argument("--replicas", default="1,2", help="replica counts to measure")
    parser.add_argument("--workloads", default="review-c1,review-c64,batch64-c4")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured")
    parser.add_argument("--reviews", type=int, default=1000)
    parser.add_argument("--bulk-reviews", type=int, default=20000, help="rows for the bulk part")
    parser.add_argument("--out", type=Path, default=RESULTS / "ray.json")
    opts = parser.parse_args(argv)
    opts.parts = opts.parts.split(",")
    opts.replicas = [int(n) for n in opts.replicas.split(",")]
    opts.workloads = opts.workloads.split(",")
    return opts


if __name__ == "__main__":
    main()
