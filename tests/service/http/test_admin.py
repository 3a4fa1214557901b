"""POST /admin/model: off by default, bearer-token protected, atomic and verified swaps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sentiment_core.bundle import sha256_file
from tests.support.servers import copy_bundle, flip_byte, make_settings, serve

TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def model_info(metrics_text: str) -> list[dict]:
    family = next(
        f for f in text_string_to_metric_families(metrics_text) if f.name == "sentiment_model_info"
    )
    return [s.labels for s in family.samples if s.value == 1]


def new_version_copy(bundle_dir: Path, dst: Path, version: str) -> Path:
    # manifest.json is not in its own hash list, so editing "version" keeps it valid
    return copy_bundle(bundle_dir, dst, edit_manifest=lambda m: m.update(version=version))


async def test_admin_disabled_without_a_token(bundle_dir, tmp_path):
    async with serve(make_settings()) as (_, client):
        response = await client.post("/admin/model", json={"path": str(bundle_dir)}, headers=AUTH)
        assert response.status_code == 404
        body = response.json()
        assert body["error"]["code"] == "not_found"
        assert "SENTIMENT_ADMIN_TOKEN" in body["error"]["message"]


async def test_admin_token_from_env_enables_it(bundle_dir, manifest, monkeypatch):
    monkeypatch.setenv("SENTIMENT_ADMIN_TOKEN", TOKEN)
    async with serve(make_settings()) as (_, client):
        response = await client.post("/admin/model", json={"path": str(bundle_dir)}, headers=AUTH)
        assert response.status_code == 200, response.text
        assert response.json()["version"] == manifest["version"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
    ids=["missing", "wrong", "not bearer", "no scheme", "longer"],
)
async def test_admin_wrong_token_is_401(bundle_dir, manifest, tmp_path, headers):
    copy = new_version_copy(bundle_dir, tmp_path / "v2", "should-not-activate")
    async with serve(make_settings(admin_token=TOKEN)) as (_, client):
        response = await client.post("/admin/model", json={"path": str(copy)}, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in response.text
        assert (await client.get("/model")).json()["version"] == manifest["version"]


async def test_activate_a_new_version_by_path(bundle_dir, manifest, tmp_path):
    new_version = f"{manifest['version']}-test2"
    copy = new_version_copy(bundle_dir, tmp_path / "v2", new_version)
    async with serve(make_settings(admin_token=TOKEN)) as (app, client):
        old_runtime = app.state.models.current()
        before = await client.post("/predict", json={"text": "a fine film"})
        assert before.json()["model"]["version"] == manifest["version"]

        response = await client.post("/admin/model", json={"path": str(copy)}, headers=AUTH)
        assert response.status_code == 200, response.text
        assert response.json()["version"] == new_version
        assert response.json()["name"] == manifest["name"]

        assert (await client.get("/model")).json()["version"] == new_version
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["model"] == {"name": manifest["name"], "version": new_version}
        info = model_info((await client.get("/metrics")).text)
        assert len(info) == 1  # the old version's series is gone
        assert info[0]["version"] == new_version
        assert info[0]["name"] == manifest["name"]

        after = await client.post("/predict", json={"text": "a fine film"})
        assert after.status_code == 200
        assert after.json()["model"]["version"] == new_version
        # same weights, same tokenizer: the same score
        assert after.json()["predictions"][0]["score"] == pytest.approx(
            before.json()["predictions"][0]["score"], abs=1e-6
        )
        assert not old_runtime.batcher.running  # the old batcher drained and stopped
        swaps = (await client.get("/metrics")).text
        assert (
            'sentiment_model_swaps_total{model="sentiment-lstm",outcome="activated"} 1.0' in swaps
        )


async def test_activate_by_version_under_the_models_root(bundle_dir, manifest, tmp_path):
    root = tmp_path / "models"
    new_version_copy(bundle_dir, root / "sentiment-lstm" / "zz-next", "zz-next")
    settings = make_settings(admin_token=TOKEN, models_root=root, model_dir=bundle_dir)
    async with serve(settings) as (_, client):
        response = await client.post("/admin/model", json={"version": "zz-next"}, headers=AUTH)
        assert response.status_code == 200, response.text
        assert (await client.get("/health/ready")).json()["model"]["version"] == "zz-next"
        typo = await client.post("/admin/model", json={"version": "zz-nxt"}, headers=AUTH)
        assert typo.status_code == 422
        assert "has no version 'zz-nxt' (its versions: zz-next)" in typo.json()["error"]["message"]


async def test_a_smoke_run_is_swapped_in_only_with_force(bundle_dir, manifest, tmp_path):
    """As sentiment-promote: a bundle trained with --limit is not served by accident."""
    root = tmp_path / "models"

    def smoke(m: dict) -> None:
        m.update(version="smoke")
        m["hyperparameters"]["limit"] = 2000

    copy_bundle(bundle_dir, root / "sentiment-lstm" / "smoke", edit_manifest=smoke)
    settings = make_settings(admin_token=TOKEN, models_root=root, model_dir=bundle_dir)
    async with serve(settings) as (_, client):
        refused = await client.post("/admin/model", json={"version": "smoke"}, headers=AUTH)
        assert refused.status_code == 422
        message = refused.json()["error"]["message"]
        assert "2000-text sample (a smoke run)" in message and '"force": true' in message
        assert (await client.get("/model")).json()["version"] == manifest["version"]
        forced = {"version": "smoke", "force": True}
        assert (await client.post("/admin/model", json=forced, headers=AUTH)).status_code == 200
        assert (await client.get("/model")).json()["version"] == "smoke"


@pytest.mark.parametrize(
    "body, says",
    [
        ({"version": "../escape"}, "directly under the models root"),
        ({"version": "a/b"}, "directly under the models root"),
        ({}, "exactly one of"),
        ({"version": "x", "path": "/tmp"}, "exactly one of"),
        ({"path": 5}, "string"),
        ({"version": "x", "colour": True}, "unknown field 'colour'"),
        ({"version": "x", "force": "yes"}, "force"),
    ],
)
async def test_activate_bad_requests_are_422(bundle_dir, manifest, body, says):
    async with serve(make_settings(admin_token=TOKEN)) as (_, client):
        response = await client.post("/admin/model", json=body, headers=AUTH)
        assert response.status_code == 422, response.text
        assert says in response.json()["error"]["message"]
        assert (await client.get("/model")).json()["version"] == manifest["version"]


async def test_tampered_bundle_is_refused_and_the_old_one_keeps_serving(
    bundle_dir, manifest, tmp_path
):
    copy = new_version_copy(bundle_dir, tmp_path / "bad", "tampered")
    model_file = manifest.get("model_file", "model.onnx")
    flip_byte(copy / model_file)
    async with serve(make_settings(admin_token=TOKEN)) as (_, client):
        response = await client.post("/admin/model", json={"path": str(copy)}, headers=AUTH)
        assert response.status_code == 422, response.text
        message = response.json()["error"]["message"]
        assert "keeps serving" in message
        assert model_file in message and "sha256" in message

        assert (await client.get("/model")).json()["version"] == manifest["version"]
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["model"]["version"] == manifest["version"]
        predict = await client.post("/predict", json={"text": "still serving"})
        assert predict.status_code == 200
        assert predict.json()["model"]["version"] == manifest["version"]
        metrics = (await client.get("/metrics")).text
        assert [i["version"] for i in model_info(metrics)] == [manifest["version"]]
        assert (
            'sentiment_model_swaps_total{model="sentiment-lstm",outcome="refused"} 1.0' in metrics
        )


async def test_missing_and_malformed_bundles_are_refused(bundle_dir, manifest, tmp_path):
    malformed = copy_bundle(
        bundle_dir, tmp_path / "malformed", edit_manifest=lambda m: m["input"].pop("max_length")
    )
    too_deep = tmp_path / "too-deep"  # json's decoder recursed past the stack: was a 500
    too_deep.mkdir()
    (too_deep / "manifest.json").write_text("[" * 100_000)
    async with serve(make_settings(admin_token=TOKEN)) as (_, client):
        for path in (tmp_path / "does-not-exist", malformed, too_deep):
            response = await client.post("/admin/model", json={"path": str(path)}, headers=AUTH)
            assert response.status_code == 422, response.text
            assert "keeps serving" in response.json()["error"]["message"]
        assert (await client.get("/health/ready")).json()["model"]["version"] == manifest["version"]


async def test_activation_makes_a_not_ready_service_ready(bundle_dir, manifest, tmp_path):
    async with serve(make_settings(admin_token=TOKEN, models_root=tmp_path)) as (_, client):
        assert (await client.get("/health/ready")).status_code == 503
        response = await client.post("/admin/model", json={"path": str(bundle_dir)}, headers=AUTH)
        assert response.status_code == 200, response.text
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["model"]["version"] == manifest["version"]
        assert (await client.post("/predict", json={"text": "good"})).status_code == 200


def tokenizer_that_does_not_parse(bundle_dir: Path, dst: Path) -> Path:
    """A copy whose tokenizer.json hashes right (the manifest re-hashed) but cannot load."""
    copy = new_version_copy(bundle_dir, dst, "bad-tokenizer")
    (copy / "tokenizer.json").write_text('{"version": "1.0"}')
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["tokenizer.json"] = {"sha256": sha256_file(copy / "tokenizer.json")}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


async def test_a_tokenizer_that_does_not_parse_is_refused(bundle_dir, manifest, tmp_path):
    copy = tokenizer_that_does_not_parse(bundle_dir, tmp_path / "bad")
    async with serve(make_settings(admin_token=TOKEN)) as (_, client):
        response = await client.post("/admin/model", json={"path": str(copy)}, headers=AUTH)
        assert response.status_code == 422, response.text
        message = response.json()["error"]["message"]
        assert message.startswith("bundle refused, the current model keeps serving")
        assert "tokenizer.json unreadable" in message
        assert (await client.get("/health/ready")).json()["model"]["version"] == manifest["version"]


async def test_a_failed_first_model_leaves_no_slot_behind(bundle_dir, manifest, tmp_path):
    """On an empty models root the refused bundle's name is not kept as a model."""
    copy = tokenizer_that_does_not_parse(bundle_dir, tmp_path / "bad")
    settings = make_settings(admin_token=TOKEN, models_root=tmp_path / "empty")
    async with serve(settings) as (app, client):
        response = await client.post("/admin/model", json={"path": str(copy)}, headers=AUTH)
        assert response.status_code == 422, response.text
        assert "nothing is served yet" in response.json()["error"]["message"]
        assert app.state.models.managers == {} and app.state.models.default_name is None
        ready = await client.get("/health/ready")
        assert ready.status_code == 503 and "no model bundle" in ready.json()["reason"]
        good = await client.post("/admin/model", json={"path": str(bundle_dir)}, headers=AUTH)
        assert good.status_code == 200, good.text
        assert (await client.get("/health/ready")).json()["model"]["version"] == manifest["version"]


async def test_an_unforeseen_failure_is_a_refusal_too(bundle_dir, manifest, tmp_path, monkeypatch):
    """Whatever the loader raises, the swap is refused (422) and the old model serves."""
    import service.model.runtime as runtime

    copy = new_version_copy(bundle_dir, tmp_path / "v2", "v2")
    async with serve(make_settings(admin_token=TOKEN)) as (_, client):
        monkeypatch.setattr(runtime, "load_bundle", lambda *_, **__: 1 / 0)
        response = await client.post("/admin/model", json={"path": str(copy)}, headers=AUTH)
        assert response.status_code == 422, response.text
        assert "ZeroDivisionError: division by zero" in response.json()["error"]["message"]
        assert (await client.get("/health/ready")).json()["model"]["version"] == manifest["version"]
