"""Model versions and hot swap under load: no request fails, none mixes two versions.

Two valid bundles that score differently: A (a copy of the default bundle under another
version name) and B (the same model with a tokenizer whose most frequent words' ids are
permuted, its manifest re-hashed and its reference scores recomputed). While clients
hammer /predict and /tokenize, POST /admin/model swaps A <-> B repeatedly, and once tries
a tampered bundle. Every answer must be a 200 whose (version, score) or (version, ids)
pair is exactly what that version computes for that text: a request scored with one
version's tokenizer and the other's model, or labelled with the wrong version, would not
match either.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest

from service.model.loader import load_bundle
from tests.support.reliability import (
    ADMIN_TOKEN,
    active_model_versions,
    assert_no_traceback,
    metric_samples,
    permuted_bundle,
    review_texts,
    short_texts,
)
from tests.support.servers import Server, copy_bundle, flip_byte

SWAPS = 8
CLIENTS = 6
AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}
SERVE_BETWEEN_SWAPS_S = 0.3  # traffic on each version before the next swap


@dataclass
class Seen:
    failures: list[str] = field(default_factory=list)
    mixed: list[str] = field(default_factory=list)
    by_version: Counter = field(default_factory=Counter)


async def client_loop(k: int, base: str, texts: list[str], expected: dict, ids: dict,
                      stop: asyncio.Event, seen: Seen) -> None:  # fmt: skip
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        i = k
        while not stop.is_set():
            i += CLIENTS
            batch = [texts[(i + j) % len(texts)] for j in range(1 + i % 4)]
            path = "/tokenize" if i % 5 == 0 else "/predict"
            try:
                response = await client.post(path, json={"texts": batch})
            except httpx.HTTPError as exc:
                seen.failures.append(f"{path}: {type(exc).__name__}: {exc}")
                continue
            assert_no_traceback(response.content, "swap traffic")
            if response.status_code != 200:
                seen.failures.append(f"{path}: {response.status_code} {response.text[:200]}")
                continue
            data = response.json()
            version = data["model"]["version"]
            seen.by_version[version] += 1
            if version not in expected:
                seen.mixed.append(f"unknown version {version!r}")
            elif path == "/predict":
                got = [p["score"] for p in data["predictions"]]
                want = [expected[version][t] for t in batch]
                if got != pytest.approx(want, abs=1e-5):
                    seen.mixed.append(f"{version}: scores {got} != {want}")
            else:
                got_ids = [r["ids"] for r in data["results"]]
                if got_ids != [ids[version][t] for t in batch]:
                    seen.mixed.append(f"{version}: token ids of another version")


def id_lists(encoder, texts: list[str]) -> list[list[int]]:
    """Token ids as /tokenize gives them (encode_ids may give the vocab table's arrays)."""
    return [list(map(int, ids)) for ids in encoder.encode_ids(texts)]


async def activate(admin: httpx.AsyncClient, path) -> httpx.Response:
    return await admin.post("/admin/model", json={"path": str(path)}, headers=AUTH)


async def test_hot_swap_under_load_no_failure_no_mixing(tmp_path, bundle_dir, manifest, reference):
    version_a = f"{manifest['version']}-swap-a"
    version_b = f"{manifest['version']}-swap-b"
    dir_a = copy_bundle(bundle_dir, tmp_path / "a", lambda m: m.update(version=version_a))
    dir_b = permuted_bundle(bundle_dir, tmp_path / "b", version_b)
    tampered = copy_bundle(bundle_dir, tmp_path / "tampered", lambda m: m.update(version="bad"))
    flip_byte(tampered / manifest.get("model_file", "model.onnx"))

    texts = short_texts(reference) + review_texts(reference, 6, min_chars=1000)
    loaded = {version_a: load_bundle(dir_a), version_b: load_bundle(dir_b)}
    expected = {v: {t: float(b.score_texts([t])[0]) for t in texts} for v, b in loaded.items()}
    ids = {v: dict(zip(texts, id_lists(b.encoder, texts), strict=True)) for v, b in loaded.items()}
    differ = [t for t in texts if abs(expected[version_a][t] - expected[version_b][t]) > 1e-3]
    assert len(differ) >= 0.8 * len(texts), "the two versions must score most texts differently"

    server = Server(
        tmp_path, SENTIMENT_MODEL_DIR=str(dir_a), SENTIMENT_ADMIN_TOKEN=ADMIN_TOKEN,
        SENTIMENT_LOG_LEVEL="warning",
    )  # fmt: skip
    seen = Seen()
    stop = asyncio.Event()
    swaps_done = 0
    try:
        server.start()
        clients = [
            asyncio.create_task(client_loop(k, server.base, texts, expected, ids, stop, seen))
            for k in range(CLIENTS)
        ]
        async with httpx.AsyncClient(base_url=server.base, timeout=60) as admin:
            await asyncio.sleep(SERVE_BETWEEN_SWAPS_S)
            for n in range(SWAPS):
                target, path = (version_b, dir_b) if n % 2 == 0 else (version_a, dir_a)
                response = await activate(admin, path)
                assert response.status_code == 200, response.text
                assert response.json()["version"] == target
                swaps_done += 1
                # the new version is what every view reports, at once
                assert (await admin.get("/model")).json()["version"] == target
                ready = (await admin.get("/health/ready")).json()
                assert ready["model"]["version"] == target, ready
                assert active_model_versions((await admin.get("/metrics")).text) == [target]
                await asyncio.sleep(SERVE_BETWEEN_SWAPS_S)

                if n == SWAPS // 2:  # a bundle that fails verification, under the same load
                    refused = await activate(admin, tampered)
                    assert refused.status_code == 422, refused.text
                    message = refused.json()["error"]["message"]
                    assert "keeps serving" in message and "sha256" in message, message
                    assert (await admin.get("/model")).json()["version"] == target
                    metrics = (await admin.get("/metrics")).text
                    assert active_model_versions(metrics) == [target]

            metrics = (await admin.get("/metrics")).text
            stop.set()
            await asyncio.wait_for(asyncio.gather(*clients), timeout=60)
    finally:
        stop.set()
        server.stop()

    served = sum(seen.by_version.values())
    assert not seen.failures, f"{len(seen.failures)} requests failed: {seen.failures[:5]}"
    assert not seen.mixed, f"{len(seen.mixed)} answers mixed versions: {seen.mixed[:5]}"
    assert seen.by_version[version_a] > 0 and seen.by_version[version_b] > 0, seen.by_version
    swaps = {
        labels["outcome"]: value
        for name, labels, value in metric_samples(metrics, "sentiment_model_swaps")
        if name.endswith("_total")
    }
    assert swaps == {"activated": SWAPS, "refused": 1}, swaps
    log = server.output()
    assert "unhandled error" not in log, log[-3000:]
    print(
        f"\n[hot swap] {swaps_done} swaps A<->B and 1 refused tampered bundle under load from "
        f"{CLIENTS} clients: {served} requests, 0 failed, 0 mixed "
        f"(per version: {dict(seen.by_version)}; {len(differ)}/{len(texts)} texts score "
        f"differently in A and B)"
    )


async def test_refused_bundle_under_load_leaves_the_old_one_serving_correctly(
    tmp_path, bundle_dir, manifest, reference
):
    """Missing file, tampered tokenizer, broken manifest: each 422, the old model keeps
    serving with its own scores, and readiness never drops."""
    bad = {}
    bad["missing tokenizer"] = copy_bundle(bundle_dir, tmp_path / "missing")
    (bad["missing tokenizer"] / manifest.get("tokenizer_file", "tokenizer.json")).unlink()
    bad["tampered tokenizer"] = copy_bundle(bundle_dir, tmp_path / "tampered")
    flip_byte(bad["tampered tokenizer"] / manifest.get("tokenizer_file", "tokenizer.json"), 100)
    bad["manifest not JSON"] = copy_bundle(bundle_dir, tmp_path / "notjson")
    (bad["manifest not JSON"] / "manifest.json").write_text("{")

    texts = short_texts(reference)
    model = load_bundle(bundle_dir)
    expected = {manifest["version"]: {t: float(model.score_texts([t])[0]) for t in texts}}
    ids = {manifest["version"]: dict(zip(texts, id_lists(model.encoder, texts), strict=True))}
    server = Server(tmp_path, SENTIMENT_ADMIN_TOKEN=ADMIN_TOKEN, SENTIMENT_LOG_LEVEL="warning")
    seen = Seen()
    stop = asyncio.Event()
    try:
        server.start()
        clients = [
            asyncio.create_task(client_loop(k, server.base, texts, expected, ids, stop, seen))
            for k in range(3)
        ]
        async with httpx.AsyncClient(base_url=server.base, timeout=60) as admin:
            for name, path in bad.items():
                response = await activate(admin, path)
                assert response.status_code == 422, (name, response.text)
                assert "keeps serving" in response.json()["error"]["message"], name
                ready = await admin.get("/health/ready")
                assert ready.status_code == 200, (name, ready.text)
                assert ready.json()["model"]["version"] == manifest["version"]
                await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*clients), timeout=60)
    finally:
        stop.set()
        server.stop()
    assert not seen.failures, seen.failures[:5]
    assert not seen.mixed, seen.mixed[:5]
    assert set(seen.by_version) == {manifest["version"]}
