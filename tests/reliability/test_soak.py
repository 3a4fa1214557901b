"""Soak: steady mixed traffic for a while; no errors, and memory does not creep.

Bounded: SOAK_SECONDS of traffic (default 45, the first third of it warm-up, at most
15 s); set SOAK_SECONDS=600 for a longer run. RSS (VmRSS of the server process) at the
end may exceed RSS after warm-up by at most 10%.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter

import httpx
import pytest

from tests.support.reliability import assert_no_traceback, review_texts, short_texts
from tests.support.servers import Server

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "45"))
WARMUP_SECONDS = min(15.0, SOAK_SECONDS / 3)
WORKERS = 4
MAX_GROWTH = 0.10
PAUSE_S = 0.002  # between one worker's requests: steady, not flat out


async def worker(k: int, base: str, texts: list[str], expected: dict, deadline: float,
                 tally: Counter, errors: list[str]) -> None:  # fmt: skip
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        i = k
        while time.monotonic() < deadline:
            i += WORKERS
            kind = ("predict", "predict-batch", "predict", "tokenize", "ready", "model")[i % 6]
            try:
                if kind == "predict-batch":
                    batch = [texts[(i + j) % len(texts)] for j in range(1 + i % 8)]
                    response = await client.post("/predict", json={"texts": batch})
                elif kind == "predict":
                    batch = [texts[i % len(texts)]]
                    response = await client.post("/predict", json={"text": batch[0]})
                elif kind == "tokenize":
                    response = await client.post("/tokenize", json={"text": texts[i % len(texts)]})
                else:
                    response = await client.get("/health/ready" if kind == "ready" else "/model")
            except httpx.HTTPError as exc:
                errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            assert_no_traceback(response.content, f"soak {kind}")
            tally[(kind, response.status_code)] += 1
            if response.status_code != 200:
                errors.append(f"{kind}: {response.status_code} {response.text[:200]}")
            elif kind.startswith("predict"):
                got = [p["score"] for p in response.json()["predictions"]]
                if got != pytest.approx([expected[t] for t in batch], abs=1e-5):
                    errors.append(f"{kind}: wrong scores {got}")
            await asyncio.sleep(PAUSE_S)


@pytest.mark.slow
async def test_soak_steady_traffic_no_errors_and_no_memory_creep(tmp_path, bundle, reference):
    texts = short_texts(reference) + review_texts(reference, 8, min_chars=1500)
    expected = {t: float(bundle.score_texts([t])[0]) for t in texts}
    server = Server(tmp_path, SENTIMENT_LOG_LEVEL="warning")
    try:
        server.start()
        started = time.monotonic()
        deadline = started + SOAK_SECONDS
        tally: Counter = Counter()
        errors: list[str] = []
        tasks = [
            asyncio.create_task(worker(k, server.base, texts, expected, deadline, tally, errors))
            for k in range(WORKERS)
        ]
        samples: list[tuple[float, int]] = []  # (seconds since start, RSS bytes)
        while time.monotonic() < deadline and not any(t.done() for t in tasks):
            samples.append((time.monotonic() - started, server.rss_bytes()))
            await asyncio.sleep(1.0)
        samples.append((time.monotonic() - started, server.rss_bytes()))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        assert server.process.poll() is None, "the server died during the soak"
    finally:
        server.stop()

    requests = sum(tally.values())
    assert not errors, f"{len(errors)} errors in {requests} requests: {errors[:5]}"
    assert requests >= SOAK_SECONDS * 10, f"only {requests} requests in {SOAK_SECONDS} s"
    warm = [rss for t, rss in samples if t >= WARMUP_SECONDS]
    assert len(warm) >= 2, samples
    baseline, end, peak = warm[0], warm[-1], max(warm)
    mib = 2**20
    assert end <= baseline * (1 + MAX_GROWTH), (
        f"RSS grew {100 * (end / baseline - 1):.1f}% after warm-up: "
        f"{baseline / mib:.1f} -> {end / mib:.1f} MiB"
    )
    by_kind = Counter()
    for (kind, _), n in tally.items():
        by_kind[kind] += n
    print(
        f"\n[soak] {SOAK_SECONDS:.0f} s ({WARMUP_SECONDS:.0f} s warm-up), {WORKERS} clients: "
        f"{requests} requests ({requests / SOAK_SECONDS:.0f}/s; {dict(by_kind)}), 0 errors; "
        f"RSS after warm-up {baseline / mib:.1f} MiB, end {end / mib:.1f} MiB "
        f"({100 * (end / baseline - 1):+.1f}%), peak {peak / mib:.1f} MiB"
    )
