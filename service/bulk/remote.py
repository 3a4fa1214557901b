"""``--server URL``: the same scores through a running service (``POST /predict``).

Several requests in flight (``concurrency``), each of ``batch_size`` texts, answered in
input order. A request the service refuses for now (503 with Retry-After: overloaded, not
ready, shutting down; 504; a failed batch's 500) or that meets a connection error is
retried, for up to ``RETRY_FOR_S``. A text the service refuses (422) becomes a bad row
with the service's message; the rest of its request is scored. A service that needs an API
key gets the one in the environment variable ``SENTIMENT_API_KEY`` (a command-line flag
would show in ``ps``) as ``Authorization: Bearer <key>``. Standard library only.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from service.bulk.formats import UsageError
from service.bulk.rows import Scored

RETRY_FOR_S = 300.0  # how long one request keeps being retried before the run fails
MAX_WAIT_S = 30.0  # the longest single wait, whatever Retry-After says
_RETRY_STATUSES = {500, 502, 503, 504}
API_KEY_ENV = "SENTIMENT_API_KEY"


class RemoteError(UsageError):
    """The service cannot score this run (unknown model, unreachable, refusing)."""


@dataclass
class Job:
    futures: list[Future]


def api_key() -> str | None:
    """The API key to send, from ``SENTIMENT_API_KEY`` (None when unset or empty)."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    if key and not (key.isascii() and key.isprintable()):
        raise UsageError(f"{API_KEY_ENV} must be printable ASCII (an HTTP header carries it)")
    return key or None


class RemoteScorer:
    def __init__(
        self,
        url: str,
        model: str | None,
        batch_size: int,
        concurrency: int = 4,
        key: str | None = None,
    ):
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--server must be an http(s) URL, got {url!r}")
        self._connection = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self._host, self._port = parts.hostname, parts.port
        self._base = parts.path.rstrip("/")
        self._local = threading.local()
        self._auth = {"Authorization": f"Bearer {key}"} if key else {}
        self.batch_size = batch_size
        self.name, self.labels = self._model(model)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="client")

    def _model(self, model: str | None) -> tuple[str, list[str]]:
        try:
            status, _, body = self._request("GET", "/models")
        except (OSError, http.client.HTTPException) as exc:
            raise RemoteError(f"cannot reach {self._where()}: {exc}") from None
        if status != 200:
            raise RemoteError(self._refused("/models", status, body))
        served = json.loads(body)
        name = model or served.get("default")
        found = {m["name"]: m for m in served.get("models", [])}
        if name not in found:
            raise RemoteError(f"the service has no model {name!r} (it serves {sorted(found)})")
        if found[name].get("status") != "ready":
            raise RemoteError(f"model {name!r} is not ready: {found[name].get('reason')}")
        return name, list(found[name]["labels"])

    def submit(self, texts: list[str]) -> Job:
        n = self.batch_size
        parts = [texts[k : k + n] for k in range(0, len(texts), n)]
        return Job([self._pool.submit(self._score, part) for part in parts])

    def result(self, job: Job) -> Scored:
        parts = [future.result() for future in job.futures]
        return _concat(parts, len(self.labels))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- one request ----------------------------------------------------------------------------
    def _score(self, texts: list[str]) -> Scored:
        body = json.dumps({"texts": texts, "model": self.name}).encode()
        status, _, answer = self._retrying("POST", "/predict", body)
        if status == 200:
            return self._parsed(json.loads(answer))
        if status in (413, 422) and len(texts) > 1:
            # Too big, or one text the service refuses: halve until each text stands alone.
            half = len(texts) // 2
            return _concat([self._score(texts[:half]), self._score(texts[half:])], len(self.labels))
        if status == 422 or status == 413:
            message = _message(answer).removeprefix("texts[0] ")
            return Scored(np.full((1, len(self.labels)), np.nan), [None], [None], [message])
        raise RemoteError(self._refused("/predict", status, answer))

    def _parsed(self, data: dict) -> Scored:
        model = (data["model"]["name"], data["model"]["version"])
        predictions = data["predictions"]
        return Scored(
            probabilities=np.array(
                [[p["probabilities"][label] for label in self.labels] for p in predictions]
            ),
            labels=[p["label"] for p in predictions],
            models=[model] * len(predictions),
            errors=[None] * len(predictions),
        )

    def _retrying(self, method: str, path: str, body: bytes) -> tuple[int, dict, bytes]:
        deadline = time.monotonic() + RETRY_FOR_S
        attempt = 0
        while True:
            attempt += 1
            try:
                status, headers, answer = self._request(method, path, body)
            except (OSError, http.client.HTTPException) as exc:
                status, headers, answer = 0, {}, str(exc).encode()
            if status and (status not in _RETRY_STATUSES or (status == 500 and attempt >= 3)):
                return status, headers, answer  # (a 500 that persists is not a blip)
            wait = _wait_s(headers.get("retry-after"), attempt)
            if time.monotonic() + wait > deadline:
                if not status:
                    raise RemoteError(f"cannot reach {self._where()}: {answer.decode()}")
                return status, headers, answer
            time.sleep(wait)

    def _request(self, method: str, path: str, body: bytes | None = None):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connection(
                self._host, self._port, timeout=120
            )
        headers = dict(self._auth)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, self._base + path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
        except BaseException:
            connection.close()  # a fresh connection next time
            raise
        return response.status, {k.lower(): v for k, v in response.getheaders()}, answer

    def _refused(self, path: str, status: int, body: bytes) -> str:
        said = f"{self._where()}{path} answered {status}"
        if status != 401:
            return f"{said}: {_message(body)}"
        if self._auth:
            return f"{said}: the service refused the API key in {API_KEY_ENV}"
        return (
            f"{said}: the service needs an API key; put one of its keys in the environment "
            f"variable {API_KEY_ENV} (sent as Authorization: Bearer <key>)"
        )

    def _where(self) -> str:
        port = f":{self._port}" if self._port else ""
        return f"{self._host}{port}{self._base}"


def _wait_s(retry_after: str | None, attempt: int) -> float:
    """Retry-After when the service gives one in seconds, else a growing pause."""
    seconds = (retry_after or "").strip()
    if seconds.isascii() and seconds.isdigit():  # (isdigit alone takes "²", float does not)
        return min(float(seconds), MAX_WAIT_S)
    return min(0.25 * 2 ** min(attempt, 8), MAX_WAIT_S)


def _message(body: bytes) -> str:
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace")
    return error["message"] if isinstance(error, dict) else str(error)


def _concat(parts: list[Scored], width: int) -> Scored:
    if not parts:
        return Scored(np.empty((0, width)), [], [], [])
    return Scored(
        probabilities=np.concatenate([p.probabilities for p in parts]),
        labels=[x for p in parts for x in p.labels],
        models=[x for p in parts for x in p.models],
        errors=[x for p in parts for x in p.errors],
    )
