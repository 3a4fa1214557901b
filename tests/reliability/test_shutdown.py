"""Graceful shutdown under load: SIGTERM during steady traffic loses no accepted request.

Eight clients keep one keep-alive connection each and post continuously. Then inference
is held at a gate (serve_with_gate.py) so that requests are certainly in flight, SIGTERM
comes, the gate opens half a second later. Every request sent before the signal must
complete with a correct 200;
after it, a request may still be served, or find the port closed (connection refused or
closed without an answer: expected, counted separately). The process must exit within
its drain timeout (plus a margin), cleanly.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest

from tests.support.reliability import assert_no_traceback, review_texts, short_texts
from tests.support.servers import Server

WORKERS = 8
DRAIN_TIMEOUT_S = 10
TRAFFIC_BEFORE_SIGNAL_S = 2.0
EXIT_MARGIN_S = 10
# Outcomes that mean "the server is gone" (not "the server failed a request").
GONE = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


@dataclass
class Call:
    started: float
    ended: float
    outcome: str  # "200", another status, or an exception class name
    texts: list[str]
    scores: list[float] | None = None


async def worker(base: str, texts: list[str], offset: int, calls: list[Call], stop_at: list[float]):
    """Post until the server is gone (or the hard deadline); one connection, kept alive."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        i = offset
        while time.monotonic() < stop_at[0]:
            batch = [texts[(i + j) % len(texts)] for j in range(1 + i % 3)]
            i += 1
            started = time.monotonic()
            try:
                response = await client.post("/predict", json={"texts": batch})
            except GONE as exc:
                calls.append(Call(started, time.monotonic(), type(exc).__name__, batch))
                if isinstance(exc, httpx.ConnectError):
                    return  # the port is closed: nothing more will be accepted
                continue
            assert_no_traceback(response.content, "shutdown traffic")
            scores = None
            if response.status_code == 200:
                scores = [p["score"] for p in response.json()["predictions"]]
            calls.append(Call(started, time.monotonic(), str(response.status_code), batch, scores))


async def test_sigterm_under_load_loses_no_accepted_request(tmp_path, bundle, reference):
    texts = short_texts(reference) + review_texts(reference, 6, min_chars=1500)
    expected = {t: float(bundle.score_texts([t])[0]) for t in texts}
    server = Server(
        tmp_path, SENTIMENT_DRAIN_TIMEOUT_S=str(DRAIN_TIMEOUT_S), SENTIMENT_LOG_LEVEL="info"
    )
    try:
        server.start()
        calls: list[Call] = []
        hard_stop = [time.monotonic() + TRAFFIC_BEFORE_SIGNAL_S + DRAIN_TIMEOUT_S + EXIT_MARGIN_S]
        workers = [
            asyncio.create_task(worker(server.base, texts, k * 5, calls, hard_stop))
            for k in range(WORKERS)
        ]
        await asyncio.sleep(TRAFFIC_BEFORE_SIGNAL_S)  # steady traffic first
        assert not any(w.done() for w in workers), [w.exception() for w in workers if w.done()]

        server.gate.touch()  # inference waits from now: requests pile up in flight
        deadline = time.monotonic() + 10
        while not server.entered.exists():
            assert time.monotonic() < deadline, "no request reached the gate"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # (not a timing assertion) let the others queue behind it

        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert server.process.poll() is None, "exited with requests still in flight"
        server.gate.unlink()
        exit_code = await asyncio.to_thread(
            server.process.wait, timeout=DRAIN_TIMEOUT_S + EXIT_MARGIN_S
        )
        exit_seconds = time.monotonic() - signalled
        await asyncio.wait_for(asyncio.gather(*workers), timeout=60)
    finally:
        server.stop()

    before = [c for c in calls if c.started < signalled]
    held = [c for c in before if c.ended > signalled]
    after = [c for c in calls if c.started >= signalled]
    lost = [c for c in before if c.outcome != "200"]
    assert not lost, f"{len(lost)} requests sent before SIGTERM did not get a 200: {lost[:5]}"
    for c in (c for c in calls if c.outcome == "200"):
        want = [expected[t] for t in c.texts]
        assert c.scores == pytest.approx(want, abs=1e-5), "a score during shutdown is wrong"
    after_outcomes = Counter(c.outcome for c in after)
    assert set(after_outcomes) <= {"200", "503", *(e.__name__ for e in GONE)}, after_outcomes

    assert exit_code in (0, -signal.SIGTERM), server.output()[-3000:]
    assert exit_seconds < DRAIN_TIMEOUT_S + EXIT_MARGIN_S
    output = server.output()
    assert "Application shutdown complete" in output, output[-3000:]
    assert '"level": "error"' not in output, output[-3000:]
    assert len(before) >= WORKERS * 5, f"too little traffic before the signal: {len(before)}"
    assert held, "no request was in flight across the signal"
    print(
        f"\n[sigterm] {len(before)} requests accepted before SIGTERM "
        f"({len(held)} of them held in flight across the signal): all 200, 0 lost; "
        f"after the signal: {dict(after_outcomes)}; process exited {exit_seconds:.2f} s after "
        f"SIGTERM (drain timeout {DRAIN_TIMEOUT_S} s), exit code {exit_code}"
    )
