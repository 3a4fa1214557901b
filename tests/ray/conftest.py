"""One local two-node Ray cluster for the whole of tests/ray (``make test-ray``).

Skipped unless pytest runs with ``--ray-cluster``: the cluster costs about 1 GB and
15 s to start, which ``make test`` does not pay. The cluster is torn down at the end of
the session, also when a test or the start fails or pytest gets SIGTERM, and the teardown
checks that none of its processes is left.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from bench.ray_cluster import LocalRayCluster
from tests.support.reliability import permuted_bundle
from tests.support.servers import BINARY_MODEL, copy_bundle, free_port

HERE = Path(__file__).resolve().parent
V1, V2 = "20990101-000001", "20990101-000002"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``ray_cluster`` run with ``--ray-cluster`` only; the rest of tests/ray
    (configuration, middleware) wherever the 'ray' extra is installed."""
    if config.getoption("--ray-cluster"):
        return
    skip = pytest.mark.skip(reason="starts a Ray cluster: make test-ray (pytest --ray-cluster)")
    for item in items:
        if HERE in Path(item.fspath).parents and item.get_closest_marker("ray_cluster"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory, bundle_dir: Path) -> Path:
    """The binary model in two versions that score differently (v2: the same model with
    a permuted tokenizer), v1 promoted: a replica that mixed one version's tokenizer with
    the other's model, or labelled its answer with the wrong version, would be caught."""
    root = tmp_path_factory.mktemp("models")
    copy_bundle(bundle_dir, root / BINARY_MODEL / V1, lambda m: m.update(version=V1))
    permuted_bundle(bundle_dir, root / BINARY_MODEL / V2, V2)
    (root / BINARY_MODEL / "PROMOTED").write_text(V1 + "\n")
    return root


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalRayCluster]:
    pytest.importorskip("ray", reason="the 'ray' extra is not installed")
    # SIGTERM (make test-ray's time limit, a CI runner stopping) as Ctrl+C: pytest then
    # stops and still runs the teardown below.
    signal.signal(signal.SIGTERM, _interrupt)
    ray_cluster = LocalRayCluster()
    with ray_cluster:
        yield ray_cluster
        import ray

        if ray.is_initialized():
            ray.shutdown()
    left = ray_cluster.leftovers()
    assert not left, f"Ray processes left after teardown: {left}"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def serve_port() -> int:
    """The Serve proxy's port: fixed for the cluster's life once Serve starts."""
    return free_port()
