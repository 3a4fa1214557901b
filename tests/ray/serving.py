"""Helpers for the Ray Serve tests: deploy with ``sentiment-serve --ray``, watch replicas."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

import service.cli
from service.ray_serve.deploy import load_config
from tests.support.load import Load, Outcome
from tests.support.servers import BINARY_MODEL

APP, DEPLOYMENT = "sentiment", "SentimentService"

# The shipped serve.yaml's deployment, made to fit 2 cores and a test's patience: small
# replicas, fast health checks, short drains; autoscaling replaced per test.
TEST_DEPLOYMENT = {
    "num_replicas": 2,
    "ray_actor_options": {"num_cpus": 0.5},
    "max_ongoing_requests": 16,
    "max_queued_requests": 64,
    "graceful_shutdown_wait_loop_s": 0.5,
    "graceful_shutdown_timeout_s": 15,
    "health_check_period_s": 1,
    "health_check_timeout_s": 5,
}
# Each replica: the service with one inference thread (four replicas share 2 cores here).
REPLICA_SETTINGS = {"SENTIMENT_INFERENCE_WORKERS": "1", "SENTIMENT_LOG_LEVEL": "warning"}


def write_config(path: Path, port: int, **deployment: Any) -> Path:
    config = load_config()
    config["http_options"]["port"] = port
    app = config["applications"][0]
    app["args"] = {"replica_header": True}
    (shipped,) = app["deployments"]
    options = {**TEST_DEPLOYMENT, **deployment}
    if "autoscaling_config" in options:
        options.pop("num_replicas")
    else:
        shipped.pop("autoscaling_config")
    app["deployments"] = [{**shipped, **options}]
    path.write_text(yaml.safe_dump(config))
    return path


def deploy(monkeypatch: pytest.MonkeyPatch, address: str, config: Path, models_root: Path):
    """``sentiment-serve --ray ADDRESS --ray-config FILE``, settings from the environment."""
    with monkeypatch.context() as env:
        env.setenv("SENTIMENT_MODELS_ROOT", str(models_root))
        env.setenv("SENTIMENT_MODELS", BINARY_MODEL)
        for key, value in REPLICA_SETTINGS.items():
            env.setenv(key, value)
        service.cli.main(["--ray", address, "--ray-config", str(config)])


def replica_states() -> dict[str, int]:
    from ray import serve

    app = serve.status().applications.get(APP)
    if app is None or DEPLOYMENT not in app.deployments:
        return {}
    return {str(k): v for k, v in app.deployments[DEPLOYMENT].replica_states.items()}


def running() -> int:
    return next((n for state, n in replica_states().items() if state.endswith("RUNNING")), 0)


def wait_until(condition, timeout_s: float, what: str, every_s: float = 0.25) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout_s``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, f"{what}: not within {timeout_s} s"
        time.sleep(every_s)
    return time.monotonic() - started


def get(base: str, path: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(base + path, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def post(base: str, path: str, payload: Any) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        base + path, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        with contextlib.suppress(ValueError):
            body = json.loads(body)
        return exc.code, dict(exc.headers), body


def ready(base: str) -> bool:
    with contextlib.suppress(OSError):
        return get(base, "/health/ready")[0] == 200
    return False


def bad_outcomes(outcomes: list[Outcome]) -> list[str]:
    """Anything but a 200 or a 503 with Retry-After."""
    return [
        f"{o.status or o.error} {o.error[:120]!r}"
        for o in outcomes
        if not (o.status == 200 or (o.status == 503 and o.retry_after))
    ]


def answering(load: Load, since: float) -> set[str]:
    """The replicas (``X-Replica``: node/pid/id) that answered 200 to requests sent since
    ``since``: a replica replaced is one the controller counts and that answers too."""
    return {o.replica for o in load.since(since) if o.status == 200 and o.replica}


def node_of(replica_header: str | None) -> str | None:
    return replica_header.split("/")[0] if replica_header else None


def pid_of(replica_header: str) -> int:
    return int(replica_header.split("/")[1])
