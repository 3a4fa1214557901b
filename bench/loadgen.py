"""Load generation: ``wrk`` with a Lua script cycling real bodies, or an async fallback.

Both are closed loops (each connection sends its next request when the previous answer
arrives), run as a separate process whose CPU time is measured, and report the same
fields. ``wrk`` (Debian package ``wrk``) is preferred: one C thread drives 64 connections
on a fraction of a core. Without it, ``python -m bench.loadgen`` runs an httpx client on
uvloop in its own process (slower per request, so it uses more CPU: it is the fallback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.procs import taskset

LUA_SCRIPT = Path(__file__).with_name("wrk_payloads.lua")


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def pick_generator(requested: str | None) -> str:
    """``requested`` if given (not "auto"), else wrk where installed, else the async client,
    with a warning: on 2 cores that client saturates long before the server does."""
    if requested and requested != "auto":
        return requested
    if have_wrk():
        return "wrk"
    _warn_async_fallback()
    return "async"


@functools.cache  # once per process: bench.explain picks a generator for every phase
def _warn_async_fallback() -> None:
    print(
        "bench: wrk not found, using the async Python load generator: it tops out near "
        "200 requests/s on 2 cores, so the figures measure it, not the server "
        "(`make bench` installs Debian's wrk; or apt-get install wrk)",
        file=sys.stderr,
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_load(
    url: str,
    payloads: Path,
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 0.0,
    timeout_s: float = 30.0,
    generator: str = "wrk",
    cpus: str | None = None,
    max_requests: int = 0,
    path: str = "/predict",
) -> dict:
    """Drive ``url`` + ``path``; counts, latency (ms) and generator CPU of the timed part.

    ``warmup_s`` (async only): one continuous run that counts only the requests completed
    after it, so a slow server's ramp (all connections waiting for their first answer)
    stays out of the window. For wrk, run a separate warm-up first.
    """
    if generator == "wrk" and warmup_s > 0:
        raise ValueError("wrk has no in-run warm-up; run a separate warm-up first")
    if generator == "wrk":
        command = _wrk_command(url, payloads, concurrency, duration_s, timeout_s, path)
    else:
        command = [
            sys.executable,
            "-m",
            "bench.loadgen",
            url + path,
            str(payloads),
            f"--concurrency={concurrency}",
            f"--duration={duration_s}",
            f"--warmup={warmup_s}",
            f"--timeout={timeout_s}",
            f"--max-requests={max_requests}",
        ]
    result = _run(command, generator, cpus, duration_s + warmup_s, timeout_s)
    # The generator's CPU over the whole run, prorated to the counted window.
    result["generator_cpu_s"] = round(
        result["generator_cpu_s"] * duration_s / (duration_s + warmup_s), 3
    )
    return result


def _wrk_command(
    url: str,
    payloads: Path,
    concurrency: int,
    duration_s: float,
    timeout_s: float,
    path: str = "/predict",
) -> list[str]:
    return [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={int(timeout_s)}s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        str(payloads),
        path,
    ]


def _run(
    command: list[str], generator: str, cpus: str | None, seconds: float, timeout_s: float
) -> dict:
    before = _children_cpu()
    done = subprocess.run(
        taskset(cpus) + command,
        capture_output=True,
        text=True,
        timeout=seconds + timeout_s + 30,  # never hangs the harness
        cwd=Path(__file__).resolve().parents[1],
    )
    generator_cpu = _children_cpu() - before
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{generator} failed ({done.returncode}): {done.stderr[-2000:]}")
    raw = json.loads(lines[-1].removeprefix("WRKJSON "))
    return _summarise(raw, generator, generator_cpu)


def _summarise(raw: dict, generator: str, generator_cpu: float) -> dict:
    transport = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    # wrk counts a non-2xx answer in ``requests`` and in ``status_errors`` (>= 400).
    ok = raw["requests"] - raw["status_errors"]
    return {
        "generator": generator,
        "requests": raw["requests"],
        "ok": ok,
        "errors": raw["status_errors"] + transport,
        "status_errors": raw["status_errors"],
        "transport_errors": transport,
        "duration_s": raw["duration_us"] / 1e6,
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": raw["mean_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "generator_cpu_s": round(generator_cpu, 3),
    }


# -- the async fallback client (its own process) -------------------------------------------
async def _drive(
    url: str,
    bodies: list[bytes],
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    timeout_s: float,
    cap: int,
) -> dict:
    import httpx
    import numpy as np

    latencies: list[float] = []
    counts = {"requests": 0, "status_errors": 0, "timeouts": 0, "read_errors": 0}
    cursor = 0
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    window_start = time.perf_counter() + warmup_s
    deadline = window_start + duration_s

    def count(key: str) -> None:
        if time.perf_counter() >= window_start:  # warm-up completions are not counted
            counts[key] += 1

    async def one_connection(client: httpx.AsyncClient) -> None:
        nonlocal cursor
        while time.perf_counter() < deadline and (cap <= 0 or counts["requests"] < cap):
            body = bodies[cursor % len(bodies)]
            cursor += 1
            t0 = time.perf_counter()
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.TimeoutException:
                count("timeouts")
                continue
            except httpx.HTTPError:
                count("read_errors")
                continue
            done = time.perf_counter()
            if done < window_start or done > deadline:
                continue  # closed loop like wrk: answers after the deadline are not counted
            latencies.append(done - t0)
            count("requests")
            if response.status_code >= 400:
                count("status_errors")

    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        # Requests still in flight a second after the deadline are abandoned, like wrk's.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(one_connection(client) for _ in range(concurrency))),
                warmup_s + duration_s + 1.0,
            )
    elapsed = min(time.perf_counter(), deadline) - window_start
    lat = np.array(latencies or [0.0]) * 1e6
    return {
        **counts,
        "duration_us": int(elapsed * 1e6),
        "bytes": 0,
        "connect_errors": 0,
        "write_errors": 0,
        "p50_us": int(np.percentile(lat, 50)),
        "p95_us": int(np.percentile(lat, 95)),
        "p99_us": int(np.percentile(lat, 99)),
        "mean_us": float(lat.mean()),
        "max_us": int(lat.max()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Closed-loop async load (wrk fallback).")
    parser.add_argument("url")
    parser.add_argument("payloads", type=Path)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.0, help="uncounted seconds first")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--max-requests", type=int, default=0, help="0: no cap")
    args = parser.parse_args(argv)
    bodies = [ln.encode() for ln in args.payloads.read_text().split("\n") if ln]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        runner = asyncio.run
    raw = runner(
        _drive(
            args.url,
            bodies,
            args.concurrency,
            args.duration,
            args.warmup,
            args.timeout,
            args.max_requests,
        )
    )
    print("WRKJSON " + json.dumps(raw), flush=True)


if __name__ == "__main__":
    main()
