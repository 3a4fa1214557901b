"""Steady load from threads, each with its own keep-alive connection (``http.client``),
recording every request's outcome: for clusters and servers that may lose a node or a
replica under it. A request that meets a connection error is recorded as such (the
client then reconnects); a 503 is honoured with its ``Retry-After``.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

REQUEST_TIMEOUT_S = 30


@dataclass
class Outcome:
    started: float
    ended: float
    status: int | None  # None: no answer (connection error, timeout)
    texts: list[str]
    error: str = ""
    retry_after: str | None = None
    version: str | None = None
    scores: list[float] | None = None
    replica: str | None = None  # X-Replica, when the server sends it


@dataclass
class Load:
    base: str
    texts: list[str]
    clients: int = 6
    think_s: float = 0.0  # pause between one answer and the next request
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        for k in range(self.clients):
            thread = threading.Thread(target=self._client, args=(k,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT_S + 5)
        assert not any(t.is_alive() for t in self._threads), "a client is stuck"

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def since(self, moment: float) -> list[Outcome]:
        with self._lock:
            return [o for o in self.outcomes if o.started >= moment]

    def statuses(self, outcomes: list[Outcome] | None = None) -> Counter:
        with self._lock:
            chosen = self.outcomes if outcomes is None else outcomes
            return Counter(o.status if o.status is not None else o.error for o in chosen)

    def wait_for(self, count: int, timeout_s: float = 60) -> None:
        """Until ``count`` more answers have come (whatever they are)."""
        with self._lock:
            target = len(self.outcomes) + count
        deadline = time.monotonic() + timeout_s
        while len(self.outcomes) < target:
            assert time.monotonic() < deadline, f"fewer than {count} answers in {timeout_s} s"
            time.sleep(0.05)

    def _client(self, k: int) -> None:
        parts = urlsplit(self.base)
        connection = None
        i = k
        while not self._stop.is_set():
            batch = [self.texts[(i + j) % len(self.texts)] for j in range(1 + i % 3)]
            i += self.clients
            if connection is None:
                connection = http.client.HTTPConnection(
                    parts.hostname, parts.port, timeout=REQUEST_TIMEOUT_S
                )
            outcome = self._post(connection, batch)
            with self._lock:
                self.outcomes.append(outcome)
            if outcome.status is None or outcome.status == 503:
                connection.close()
                connection = None
            wait = float(outcome.retry_after or 0) if outcome.status == 503 else self.think_s
            if wait:
                self._stop.wait(wait)
        if connection is not None:
            connection.close()

    def _post(self, connection: http.client.HTTPConnection, texts: list[str]) -> Outcome:
        started = time.monotonic()
        body = json.dumps({"texts": texts})
        try:
            connection.request(
                "POST", "/predict", body=body, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(started, time.monotonic(), None, texts, type(exc).__name__)
        outcome = Outcome(
            started,
            time.monotonic(),
            response.status,
            texts,
            retry_after=response.getheader("Retry-After"),
            replica=response.getheader("X-Replica"),
        )
        if response.status == 200:
            answer = json.loads(data)
            outcome.version = answer["model"]["version"]
            outcome.scores = [p["score"] for p in answer["predictions"]]
        else:
            outcome.error = data[:300].decode(errors="replace")
        return outcome
