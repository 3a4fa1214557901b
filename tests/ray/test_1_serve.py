"""Ray Serve on a real two-node cluster: the service's own app in every replica.

In order, on one deployment made by ``sentiment-serve --ray``: replicas on both nodes
answer exactly as the single-process service does (routes, errors, metrics too); one
replica's process killed under load; a model update rolled across the replicas under
load; autoscaling up under load and down after, within the configured delays; overload
answered with fast 503s.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.ray_cluster import HEAD_IP, WORKER_IP
from service.model.loader import load_bundle
from tests.ray.conftest import V1, V2
from tests.ray.serving import (
    answering,
    bad_outcomes,
    deploy,
    get,
    node_of,
    pid_of,
    post,
    ready,
    running,
    wait_until,
    write_config,
)
from tests.support.load import Load
from tests.support.reliability import review_texts, short_texts
from tests.support.servers import BINARY_MODEL, make_settings, serve

pytestmark = pytest.mark.ray_cluster

DEPLOY_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def base(cluster, models_root, serve_port, tmp_path_factory, monkeypatch_module) -> str:
    port = serve_port
    config = write_config(tmp_path_factory.mktemp("serve") / "serve.yaml", port)
    deploy(monkeypatch_module, cluster.address, config, models_root)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: running() == 2 and ready(url), DEPLOY_TIMEOUT_S, "2 replicas ready")
    return url


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def texts(reference) -> list[str]:
    return short_texts(reference) + review_texts(reference, 4, min_chars=600)


@pytest.fixture(scope="module")
def expected(models_root, texts) -> dict[str, dict[str, float]]:
    """Each version's score for each text, each scored alone, outside the service."""
    out = {}
    for version in (V1, V2):
        bundle = load_bundle(models_root / BINARY_MODEL / version)
        out[version] = {t: float(bundle.score_texts([t])[0]) for t in texts}
    return out


def batches(texts: list[str]) -> list[list[str]]:
    return [texts[i : i + 1 + i % 3] for i in range(len(texts))]


async def test_replicas_on_both_nodes_answer_as_one_process_does(base, models_root, texts):
    settings = make_settings(models_root=models_root, models=[BINARY_MODEL])
    async with serve(settings) as (_, local):
        nodes = set()
        for batch in batches(texts) * 4:
            status, headers, answer = post(base, "/predict", {"texts": batch})
            assert status == 200, answer
            nodes.add(node_of(headers.get("x-replica")))
            want = (await local.post("/predict", json={"texts": batch})).json()
            assert answer == want  # the same bytes' worth: labels, scores, tokens, version
        for path, body in (("/tokenize", {"text": texts[0]}), ("/predict", {"texts": []})):
            status, _, answer = post(base, path, body)
            want = await local.post(path, json=body)
            assert (status, answer.get("error", {}).get("code")) == (
                want.status_code,
                want.json().get("error", {}).get("code"),
            ), answer
    assert nodes == {HEAD_IP, WORKER_IP}, f"answered from {nodes}"
    assert get(base, "/models")[0] == 200
    status, _, metrics = get(base, "/metrics")
    assert status == 200 and b"sentiment_requests_total" in metrics
    assert get(base, "/no-such-route")[0] == 404


def test_a_killed_replica_costs_no_request_a_5xx_or_its_connection(base, texts):
    with Load(base, texts, clients=6) as load:
        load.wait_for(60)
        victim = next(o.replica for o in reversed(load.outcomes) if o.replica)
        killed = time.monotonic()
        os.kill(pid_of(victim), signal.SIGKILL)
        # (The controller still counts the dead one as running for a moment: wait for two
        # replicas answering, neither of them the victim.)
        wait_until(
            lambda: running() == 2 and len(answering(load, killed) - {victim}) == 2,
            DEPLOY_TIMEOUT_S,
            "the replica replaced",
        )
        replaced = time.monotonic()
        load.wait_for(60)
    bad = bad_outcomes(load.outcomes)
    assert not bad, f"{len(bad)} requests failed: {bad[:5]}"
    around = load.statuses([o for o in load.outcomes if o.started < killed < o.ended])
    print(
        f"\n[replica killed] {load.statuses()} over {len(load.outcomes)} requests; in flight "
        f"at the kill: {dict(around)}; replaced after {replaced - killed:.1f} s"
    )


def test_a_model_update_rolls_over_with_no_failure_and_no_mix(
    base, cluster, models_root, tmp_path, monkeypatch, texts, expected
):
    config = write_config(tmp_path / "serve.yaml", int(base.rsplit(":", 1)[1]))
    with Load(base, texts, clients=6) as load:
        load.wait_for(40)
        (models_root / BINARY_MODEL / "PROMOTED").write_text(V2 + "\n")
        started = time.monotonic()
        deploy(monkeypatch, cluster.address, config, models_root)  # rolls the replicas
        wait_until(
            lambda: (
                [o.version for o in load.since(time.monotonic() - 1)].count(V1) == 0
                and len(load.since(time.monotonic() - 1)) > 5
            ),
            DEPLOY_TIMEOUT_S,
            "only v2 answering",
            every_s=0.5,
        )
        rolled = time.monotonic() - started
        load.wait_for(40)
    bad = bad_outcomes(load.outcomes)
    assert not any(o.status != 200 for o in load.outcomes), f"failed: {bad[:5]}"
    mixed = [
        (o.version, o.texts[0][:40])
        for o in load.outcomes
        if o.scores != pytest.approx([expected[o.version][t] for t in o.texts], abs=1e-5)
    ]
    assert not mixed, f"{len(mixed)} answers not what their version computes: {mixed[:5]}"
    versions = load.statuses()  # (all 200 by now)
    seen = {o.version for o in load.outcomes}
    assert seen == {V1, V2}, seen
    print(f"\n[rolling update] {len(load.outcomes)} requests, {versions}: 0 failed, 0 mixed; "
          f"v2 alone after {rolled:.1f} s")  # fmt: skip


def test_autoscaling_goes_up_under_load_and_down_after(
    base, cluster, models_root, tmp_path, monkeypatch, texts
):
    upscale_s, downscale_s = 3, 8
    autoscaling = {
        "min_replicas": 1,
        "max_replicas": 3,
        "target_ongoing_requests": 2,
        "upscale_delay_s": upscale_s,
        "downscale_delay_s": downscale_s,
        # Over Serve's metrics interval (10 s): averaged over 12 s of load, the
        # decision takes a few seconds, then the delays apply.
        "look_back_period_s": 12,
    }
    config = write_config(
        tmp_path / "serve.yaml", int(base.rsplit(":", 1)[1]), autoscaling_config=autoscaling
    )
    deploy(monkeypatch, cluster.address, config, models_root)
    wait_until(lambda: running() == 1 and ready(base), DEPLOY_TIMEOUT_S, "down to 1 replica")
    long_texts = review_texts([{"text": t} for t in texts], 16, min_chars=1500)
    with Load(base, long_texts, clients=10) as load:
        loaded = time.monotonic()
        up_s = wait_until(lambda: running() >= 2, DEPLOY_TIMEOUT_S, "scaled up")
        peak = running()
    idle = time.monotonic()
    down_s = wait_until(lambda: running() == 1, downscale_s + 60, "scaled back down")
    assert up_s >= upscale_s, f"scaled up after {up_s:.1f} s, before upscale_delay_s"
    assert down_s >= downscale_s, f"scaled down after {down_s:.1f} s, before downscale_delay_s"
    bad = bad_outcomes(load.outcomes)
    assert not bad, f"{len(bad)} requests failed: {bad[:5]}"
    print(
        f"\n[autoscaling] up to {peak} replicas {up_s:.1f} s after the load began "
        f"(upscale_delay_s {upscale_s}); back to 1 {down_s:.1f} s after it stopped "
        f"(downscale_delay_s {downscale_s}); {load.statuses()}; loaded at {loaded:.0f}, "
        f"idle at {idle:.0f}"
    )


def test_overload_is_a_fast_503_with_retry_after(
    base, cluster, models_root, tmp_path, monkeypatch, texts
):
    """Past max_ongoing_requests in the replica and max_queued_requests in the proxy, a
    request gets a 503 with Retry-After at once (serve.yaml's backpressure_config), as
    from one process's full queue: no wait behind the queue, no other error."""
    limits = {"num_replicas": 1, "max_ongoing_requests": 2, "max_queued_requests": 2}
    config = write_config(tmp_path / "serve.yaml", int(base.rsplit(":", 1)[1]), **limits)
    deploy(monkeypatch, cluster.address, config, models_root)
    wait_until(lambda: running() == 1 and ready(base), DEPLOY_TIMEOUT_S, "1 replica")
    long_texts = review_texts([{"text": t} for t in texts], 8, min_chars=1500)

    def one(_: int) -> tuple[int, str | None, float]:
        started = time.monotonic()
        status, headers, _body = post(base, "/predict", {"texts": long_texts})
        retry_after = {k.lower(): v for k, v in headers.items()}.get("retry-after")
        return status, retry_after, time.monotonic() - started

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(one, range(32)))
    statuses = Counter(status for status, _, _ in answers)
    rejected = [(retry, seconds) for status, retry, seconds in answers if status == 503]
    assert set(statuses) == {200, 503}, statuses
    assert all(retry is not None for retry, _ in rejected), rejected
    slowest = max(seconds for _, seconds in rejected)
    assert slowest < 2.0, f"a 503 took {slowest:.2f} s"
    print(f"\n[overload] {dict(statuses)}; slowest 503 after {slowest * 1000:.0f} ms")
