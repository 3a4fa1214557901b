"""Overload: a burst far beyond a small queue gets correct 200s or fast 503s, nothing else.

A live server with an 8-text queue takes 400 concurrent requests of long reviews
(1 to 8 texts each). Every answer must be either a 200 whose scores equal the same texts
scored alone, or a 503 "overloaded" with Retry-After that did not wait behind the queue
or behind other requests' tokenizing. Afterwards the server is ready and correct, and its
memory is back near where it started.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest

from service.errors import Overloaded
from service.inference.batcher import Batcher
from tests.support.batching import as_run_groups, firsts
from tests.support.reliability import (
    assert_no_traceback,
    raw_post_json,
    request_statuses,
    review_texts,
)
from tests.support.servers import Server

QUEUE = 8
BURST = 400
DISTINCT_TEXTS = 16
RSS_SLACK_BYTES = 50 * 1024 * 1024  # growth allowed from one burst to the next
BURST_GROWTH_BYTES = 150 * 1024 * 1024  # growth allowed over the idle server by a first burst
MAX_503_SECONDS = 2.0  # logical bound: a refusal must not wait for queued or encoding work


@pytest.fixture
def small_queue_server(tmp_path):
    with Server(
        tmp_path,
        SENTIMENT_QUEUE_SIZE=str(QUEUE),
        SENTIMENT_MAX_TEXTS_PER_REQUEST=str(QUEUE),
        SENTIMENT_LOG_LEVEL="warning",
    ) as server:
        yield server


@dataclass
class BurstResult:
    statuses: Counter
    seconds: float
    max_served_s: float
    max_refused_s: float


async def burst(port: int, bodies: list[dict], expected: dict, version: str) -> BurstResult:
    """Send every body at once; check each answer is a correct 200 or a fast 503."""
    started = time.monotonic()
    results = await asyncio.wait_for(
        asyncio.gather(*(raw_post_json(port, "/predict", b) for b in bodies)), timeout=180
    )
    seconds = time.monotonic() - started
    statuses: Counter = Counter()
    served, refused = [0.0], [0.0]
    for body, response in zip(bodies, results, strict=True):
        statuses[response.status] += 1
        assert_no_traceback(response.body, "burst")
        if response.status == 200:
            data = response.json()
            assert data["model"]["version"] == version
            got = [p["score"] for p in data["predictions"]]
            want = [expected[t] for t in body["texts"]]
            assert got == pytest.approx(want, abs=1e-5), "a score under load differs from alone"
            served.append(response.seconds)
        else:
            assert response.status == 503, (response.status, response.body[:300])
            assert response.json()["error"]["code"] == "overloaded", response.body
            assert int(response.headers["retry-after"]) >= 1
            refused.append(response.seconds)
    assert statuses[200] > 0, statuses
    assert statuses[503] > 0, f"a {len(bodies)}-request burst never filled the queue"
    assert max(refused) < MAX_503_SECONDS, f"a 503 took {max(refused):.2f} s"
    return BurstResult(statuses, seconds, max(served), max(refused))


async def test_burst_beyond_capacity_gets_correct_200s_or_fast_503s(
    small_queue_server, bundle, manifest, reference
):
    server = small_queue_server
    texts = review_texts(reference, DISTINCT_TEXTS, min_chars=4000)
    expected = {t: float(bundle.score_texts([t])[0]) for t in texts}
    bodies = [
        {"texts": [texts[(i + j) % DISTINCT_TEXTS] for j in range(1 + i % QUEUE)]}
        for i in range(BURST)
    ]
    for k in range(1, QUEUE + 1):  # every batch shape the burst can produce, one by one
        response = await raw_post_json(server.port, "/predict", {"texts": texts[:k]})
        assert response.status == 200, response.body
    idle = server.rss_bytes()

    # The first burst brings thread pools, their malloc arenas and 400 connections' buffers
    # to their high-water mark; the second must not keep anything beyond it.
    await burst(server.port, bodies, expected, manifest["version"])
    await asyncio.sleep(0.5)  # (not a timing assertion) let the server settle
    baseline = server.rss_bytes()
    measured = await burst(server.port, bodies, expected, manifest["version"])

    # afterwards: ready, correct, nothing but 200 and 503 counted, memory back near baseline
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
        assert (await client.get("/health/ready")).status_code == 200
        response = await client.post("/predict", json={"text": texts[0]})
        assert response.status_code == 200
        score = response.json()["predictions"][0]["score"]
        assert score == pytest.approx(expected[texts[0]], abs=1e-5)
        server_side = request_statuses((await client.get("/metrics")).text)
    assert set(server_side) <= {200, 503}, server_side
    await asyncio.sleep(1.0)  # (not a timing assertion) let the server settle
    after = server.rss_bytes()
    mib = 2**20
    assert baseline <= idle + BURST_GROWTH_BYTES, (
        f"one burst took RSS from {idle / mib:.1f} to {baseline / mib:.1f} MiB: refused "
        "requests must cost next to nothing (admission before tokenizing)"
    )
    assert after <= baseline + RSS_SLACK_BYTES, (
        f"RSS {after / mib:.1f} MiB after the burst vs {baseline / mib:.1f} MiB before"
    )
    print(
        f"\n[overload] burst of {BURST} requests ({sum(len(b['texts']) for b in bodies)} texts of "
        f"4-8k chars) against a {QUEUE}-text queue in {measured.seconds:.1f} s: "
        f"{measured.statuses[200]} x 200 (scores equal alone; max latency "
        f"{measured.max_served_s * 1000:.0f} ms), {measured.statuses[503]} x 503 (max latency "
        f"{measured.max_refused_s * 1000:.0f} ms); RSS idle {idle / mib:.1f}, after a first burst "
        f"{baseline / mib:.1f}, after the measured burst {after / mib:.1f} MiB"
    )


# -- admission: the queue bound covers texts being encoded ---------------------------------------
async def test_admitted_texts_count_against_the_queue_bound():
    batcher = Batcher(as_run_groups(lambda seqs: [0.5] * len(seqs)), queue_size=4, workers=1)
    batcher.start()
    try:
        first = batcher.admit(3)  # e.g. a request tokenizing three texts
        assert batcher.admitted == 3
        with pytest.raises(Overloaded, match="queued or being encoded"):
            batcher.admit(2)
        with pytest.raises(Overloaded):
            await batcher.submit([[1], [2]])  # an unadmitted submit sees the same bound
        assert firsts(await batcher.submit([[1], [2], [3]], first)) == [0.5, 0.5, 0.5]
        assert batcher.admitted == 0
        batcher.withdraw(first)  # after submit: a no-op
        assert batcher.admitted == 0

        second = batcher.admit(4)
        batcher.withdraw(second)  # e.g. encoding failed or the client left
        assert batcher.admitted == 0
        assert firsts(await batcher.submit([[1]] * 4)) == [0.5] * 4
    finally:
        await batcher.stop(5)
