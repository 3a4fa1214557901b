"""The worker node lost under steady load (its raylet and every process on it killed):
requests get a 200 or a retryable 503, none another 5xx or a dropped connection, and the
replicas come back on the node that is left. Last: the cluster has one node after it."""

from __future__ import annotations

import signal
import time

import pytest

from bench.ray_cluster import HEAD_IP, WORKER_IP
from tests.ray.serving import (
    answering,
    bad_outcomes,
    deploy,
    node_of,
    ready,
    running,
    wait_until,
    write_config,
)
from tests.support.load import Load
from tests.support.reliability import short_texts

pytestmark = pytest.mark.ray_cluster


def test_losing_the_worker_node_under_load(
    cluster, models_root, serve_port, tmp_path, monkeypatch, reference
):
    port = serve_port
    config = write_config(tmp_path / "serve.yaml", port)
    deploy(monkeypatch, cluster.address, config, models_root)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: running() == 2 and ready(base), 120, "2 replicas ready")
    with Load(base, short_texts(reference), clients=6) as load:
        wait_until(
            lambda: {node_of(o.replica) for o in load.outcomes} >= {HEAD_IP, WORKER_IP},
            60,
            "answers from both nodes",
        )
        lost = time.monotonic()
        gone = {o.replica for o in load.outcomes if node_of(o.replica) == WORKER_IP}
        killed = cluster.worker.kill(signal.SIGKILL)
        # Back to two replicas answering, none of them one that was on the lost node.
        wait_until(
            lambda: running() == 2 and len(answering(load, lost) - gone) == 2,
            120,
            "replicas back to 2",
        )
        back = time.monotonic()
        load.wait_for(60)
    assert killed, "no process of the worker node found"
    bad = bad_outcomes(load.outcomes)
    assert not bad, f"{len(bad)} requests failed: {bad[:5]}"
    after = {node_of(o.replica) for o in load.since(back)}
    assert after == {HEAD_IP}, after
    print(
        f"\n[worker node killed: {len(killed)} processes] {load.statuses()} over "
        f"{len(load.outcomes)} requests; 2 replicas again after {back - lost:.1f} s"
    )
