"""The cluster itself: two nodes, and their workers run this checkout's code."""

from __future__ import annotations

import pytest

from bench.ray_cluster import HEAD_IP, WORKER_IP
from service.ray_serve.deploy import connect
from tests.support.servers import PROJECT_ROOT

pytestmark = pytest.mark.ray_cluster


def test_both_nodes_run_this_checkouts_code(cluster):
    connect(cluster.address)
    roots = cluster.code_roots()
    assert roots == {HEAD_IP: str(PROJECT_ROOT), WORKER_IP: str(PROJECT_ROOT)}, roots
