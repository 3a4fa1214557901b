"""SIGTERM under load from clients that open a new connection per request: no resets.

Sixteen threads post with Python's urllib (a connection per request, the whole body sent
before the answer is read), each honouring ``Retry-After`` on a 503. SIGTERM comes while
they run, ten times, a fresh server each time. Every request must get a 200 or a 503 with
``Retry-After``; none a reset, another 5xx, or no answer. A connection *refused* is the
one other outcome allowed, and only after the signal: the client's request was never
sent (the server has stopped listening), so it knows to go elsewhere.

The server (service/http/graceful.py): lame duck (readiness 503, serving on), then a
bounded closing window (503 + Retry-After + Connection: close for everything, queued
connections included, new SYNs dropped), then the drain.
"""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests.support.reliability import short_texts
from tests.support.servers import Server

pytestmark = pytest.mark.slow

ROUNDS = 10
CLIENTS = 16
LAME_DUCK_S = 0.5
FIRST_LAME_DUCK_S = 2.0  # round 0 checks readiness during it: room for a slow machine
TRAFFIC_BEFORE_SIGNAL_S = 0.6
DRAIN_TIMEOUT_S = 10
REQUEST_TIMEOUT_S = 15  # "no answer" = nothing within this
EXIT_WITHIN_S = 15


@dataclass
class Round:
    signalled_at: float = float("inf")
    outcomes: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    refused_before_signal: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, outcome: str, detail: str = "") -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            if outcome not in ("200", "503+retry-after", "refused"):
                self.failures.append(f"{outcome}: {detail}"[:300])


def post(base: str, texts: list[str]) -> tuple[str, float, str]:
    """One request on a new connection: (outcome, seconds to wait before the next, detail)."""
    body = json.dumps({"texts": texts}).encode()
    request = urllib.request.Request(
        f"{base}/predict", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            answer = json.loads(response.read())
            ok = len(answer["predictions"]) == len(texts)
            return ("200" if ok else "bad 200"), 0.0, str(answer)[:200]
    except urllib.error.HTTPError as exc:
        retry_after = exc.headers.get("Retry-After")
        exc.read()
        if exc.code == 503 and retry_after is not None:
            return "503+retry-after", float(retry_after), ""
        return f"{exc.code} (Retry-After {retry_after})", 0.0, ""
    except urllib.error.URLError as exc:
        # Raised while connecting or sending: refused means nothing reached the server.
        if isinstance(exc.reason, ConnectionRefusedError):
            return "refused", 0.0, ""
        return f"URLError {type(exc.reason).__name__}", 0.0, str(exc.reason)
    except (http.client.HTTPException, OSError) as exc:  # reset, closed without answer
        return type(exc).__name__, 0.0, str(exc)


def client(base: str, texts: list[str], k: int, rnd: Round, stop: threading.Event) -> None:
    i = k
    while not stop.is_set():
        batch = [texts[(i + j) % len(texts)] for j in range(1 + i % 3)]
        i += 1
        started = time.monotonic()
        outcome, wait_s, detail = post(base, batch)
        if outcome == "refused":
            if started < rnd.signalled_at:
                rnd.refused_before_signal += 1
            rnd.record(outcome)
            return  # the server has stopped listening: go elsewhere
        rnd.record(outcome, detail)
        if wait_s:
            stop.wait(wait_s)  # honour Retry-After


def check_readiness_says_shutting_down(base: str) -> None:
    """Within the lame duck: /health/ready answers 503 "shutting down" (once the signal
    has been handled: it is asynchronous, hence the few retries)."""
    deadline = time.monotonic() + FIRST_LAME_DUCK_S / 2
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health/ready", timeout=5):
                pass
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
            body = json.loads(exc.read())
            assert body.get("reason") == "shutting down", body
            return
        assert time.monotonic() < deadline, "still ready after SIGTERM"
        time.sleep(0.02)


def one_round(tmp_path, texts: list[str], number: int) -> tuple[Round, float]:
    lame_duck = FIRST_LAME_DUCK_S if number == 0 else LAME_DUCK_S
    server = Server(
        tmp_path,
        SENTIMENT_LAME_DUCK_S=str(lame_duck),
        SENTIMENT_DRAIN_TIMEOUT_S=str(DRAIN_TIMEOUT_S),
    )
    rnd, stop = Round(), threading.Event()
    threads = [
        threading.Thread(target=client, args=(server.base, texts, k, rnd, stop), daemon=True)
        for k in range(CLIENTS)
    ]
    try:
        server.start()
        for t in threads:
            t.start()
        time.sleep(TRAFFIC_BEFORE_SIGNAL_S)
        rnd.signalled_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        if number == 0:
            check_readiness_says_shutting_down(server.base)
        code = server.process.wait(timeout=EXIT_WITHIN_S + lame_duck)
        exit_s = time.monotonic() - rnd.signalled_at
        # Clients asleep on a Retry-After find the port closed when they wake: refused.
        for t in threads:
            t.join(timeout=REQUEST_TIMEOUT_S + 5)
        assert not any(t.is_alive() for t in threads), "a client got no answer"
    finally:
        stop.set()
        server.stop()
    assert code in (0, -signal.SIGTERM), server.output()[-3000:]
    assert "Application shutdown complete" in server.output(), server.output()[-3000:]
    return rnd, exit_s


def test_sigterm_under_new_connection_load_resets_nothing(tmp_path, reference):
    texts = short_texts(reference)
    totals: Counter = Counter()
    exits = []
    for number in range(ROUNDS):
        (where := tmp_path / f"round-{number}").mkdir()
        rnd, exit_s = one_round(where, texts, number)
        assert not rnd.failures, f"round {number}: {rnd.outcomes}; {rnd.failures[:5]}"
        assert rnd.refused_before_signal == 0, f"round {number}: refused while serving"
        assert rnd.outcomes["200"] >= CLIENTS, f"round {number}: little traffic {rnd.outcomes}"
        totals += rnd.outcomes
        exits.append(exit_s)
    # The closing window was exercised: requests arrived during it and got their 503.
    assert totals["503+retry-after"] > 0, totals
    print(
        f"\n[sigterm x{ROUNDS}, {CLIENTS} urllib clients, new connection per request] "
        f"{dict(totals)}; exit after the signal: {min(exits):.2f}-{max(exits):.2f} s "
        f"(lame duck {LAME_DUCK_S} s, {FIRST_LAME_DUCK_S} s in round 0)"
    )
