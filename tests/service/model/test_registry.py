"""Several models served at once: each with its own batcher, chosen per request by name."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.bundles import copy_as, promote_by_hand, write_softmax_bundle
from tests.support.servers import NEGATIVE_TEXT, POSITIVE_TEXT, make_settings, serve

TOKEN = "registry-admin-token-0123456789"


@pytest.fixture
def models_root(tmp_path, bundle_dir):
    """The committed binary model as ``sentiment-lstm`` and a three-class ``three``."""
    root = tmp_path / "models"
    copy_as(bundle_dir, root, "sentiment-lstm")
    write_softmax_bundle(root / "three" / "v1", "three", "v1")
    promote_by_hand(root, "three", "v1")
    return root


def samples(metrics_text: str, name: str) -> list:
    return [
        s for f in text_string_to_metric_families(metrics_text) for s in f.samples if s.name == name
    ]


async def test_every_promoted_model_is_served_and_chosen_by_name(models_root, manifest):
    settings = make_settings(models_root=models_root, default_model="sentiment-lstm")
    async with serve(settings) as (app, client):
        assert set(app.state.models.managers) == {"sentiment-lstm", "three"}
        ready = (await client.get("/health/ready")).json()
        assert ready["model"]["name"] == "sentiment-lstm"
        assert {m["name"] for m in ready["models"]} == {"sentiment-lstm", "three"}

        binary = (await client.post("/predict", json={"text": POSITIVE_TEXT})).json()
        assert binary["model"] == {"name": "sentiment-lstm", "version": manifest["version"]}
        assert set(binary["predictions"][0]["probabilities"]) == {"negative", "positive"}

        texts = ["great and superb, I love it", "awful, boring, the worst", "okay, fine, average"]
        three = (await client.post("/predict", json={"texts": texts, "model": "three"})).json()
        assert three["model"] == {"name": "three", "version": "v1"}
        got = three["predictions"]
        assert [p["label"] for p in got] == ["positive", "negative", "neutral"]
        for p in got:
            assert set(p["probabilities"]) == {"negative", "neutral", "positive"}
            assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
            probs = p["probabilities"]
            assert p["score"] == pytest.approx(probs["positive"] - probs["negative"], abs=1e-6)

        tokens = (await client.post("/tokenize", json={"text": "great", "model": "three"})).json()
        assert tokens["model"]["name"] == "three" and tokens["results"][0]["tokens"] == ["great"]


async def test_models_lists_each_model_and_model_answers_for_the_default(models_root, manifest):
    async with serve(make_settings(models_root=models_root, default_model="three")) as (_, client):
        listed = (await client.get("/models")).json()
        assert listed["default"] == "three"
        by_name = {m["name"]: m for m in listed["models"]}
        assert by_name["sentiment-lstm"]["labels"] == ["negative", "positive"]
        assert by_name["sentiment-lstm"]["decision"] == "threshold"
        assert by_name["sentiment-lstm"]["metrics"]["test"]["accuracy"] == pytest.approx(
            manifest["metrics"]["test"]["accuracy"]
        )
        assert by_name["three"]["labels"] == ["negative", "neutral", "positive"]
        assert by_name["three"]["decision"] == "argmax" and by_name["three"]["threshold"] is None
        assert (await client.get("/model")).json()["name"] == "three"
        default = (await client.post("/predict", json={"text": "okay"})).json()
        assert default["model"]["name"] == "three"


async def test_an_unknown_model_is_a_404_naming_the_served_ones(models_root):
    async with serve(make_settings(models_root=models_root)) as (_, client):
        for path in ("/predict", "/tokenize"):
            response = await client.post(path, json={"text": "fine", "model": "nope"})
            assert response.status_code == 404, response.text
            error = response.json()["error"]
            assert error["code"] == "not_found" and "'nope'" in error["message"]
            assert "'sentiment-lstm'" in error["message"] and "'three'" in error["message"]
            assert error["details"] == [{"field": "model", "message": error["message"]}]
        huge = await client.post("/predict", json={"text": "fine", "model": "x" * 100_000})
        assert huge.status_code == 404 and len(huge.content) < 1_000


async def test_readiness_covers_every_model(models_root):
    (models_root / "three" / "v1" / "model.onnx").write_bytes(b"not a model")
    async with serve(make_settings(models_root=models_root)) as (_, client):
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert "three: " in response.json()["reason"] and "model.onnx" in response.json()["reason"]
        assert response.headers["retry-after"] == "5"
        # which models do serve, as when ready (the default here is sentiment-lstm)
        assert [m["name"] for m in response.json()["models"]] == ["sentiment-lstm"]
        assert response.json()["model"]["name"] == "sentiment-lstm"
        # the other model still answers
        ok = await client.post("/predict", json={"text": NEGATIVE_TEXT, "model": "sentiment-lstm"})
        assert ok.status_code == 200
        broken = await client.post("/predict", json={"text": "fine", "model": "three"})
        assert broken.status_code == 503 and broken.json()["error"]["code"] == "not_ready"
        listed = {m["name"]: m for m in (await client.get("/models")).json()["models"]}
        assert (
            listed["three"]["status"] == "not_ready" and "model.onnx" in listed["three"]["reason"]
        )
        ready = samples((await client.get("/metrics")).text, "sentiment_model_ready")
        assert {s.labels["model"]: s.value for s in ready} == {"sentiment-lstm": 1.0, "three": 0.0}


async def test_the_served_set_can_be_narrowed_and_metrics_carry_the_model(models_root):
    settings = make_settings(models_root=models_root, models=["three"])
    async with serve(settings) as (app, client):
        assert list(app.state.models.managers) == ["three"]
        await client.post("/predict", json={"texts": ["great", "okay"]})  # the only model
        metrics = (await client.get("/metrics")).text
        texts = samples(metrics, "sentiment_texts_total")
        assert [(s.labels["model"], s.value) for s in texts] == [("three", 2.0)]
        batches = samples(metrics, "sentiment_batch_size_count")
        assert [s.labels["model"] for s in batches] == ["three"]


async def test_request_metrics_say_which_model_answered(models_root, manifest):
    async with serve(make_settings(models_root=models_root)) as (_, client):
        await client.post("/predict", json={"text": "great"})  # the default: sentiment-lstm
        await client.post("/predict", json={"text": "great", "model": "three"})
        await client.post("/tokenize", json={"text": "great", "model": "three"})
        await client.post("/explain", json={"text": "great", "model": "three"})
        await client.post("/v2/models/three/infer", json=V2_INFER)
        await client.post("/predict", json={"text": "great", "model": "nope"})  # no model: ""
        await client.get("/health/ready")
        metrics = (await client.get("/metrics")).text
    answered = {
        (s.labels["route"], s.labels["status"], s.labels["model"])
        for s in samples(metrics, "sentiment_requests_total")
    }
    assert answered >= {
        ("/predict", "200", "sentiment-lstm"),
        ("/predict", "200", "three"),
        ("/tokenize", "200", "three"),
        ("/explain", "200", "three"),
        ("/v2/models/{name}/infer", "200", "three"),
        ("/predict", "404", ""),
        ("/health/ready", "200", ""),
    }
    timed = {
        (s.labels["route"], s.labels["model"])
        for s in samples(metrics, "sentiment_request_seconds_count")
    }
    assert ("/predict", "three") in timed and ("/predict", "sentiment-lstm") in timed
    info = {s.labels["model"]: s.labels for s in samples(metrics, "sentiment_model_info")}
    assert info["three"]["name"] == "three" and info["three"]["version"] == "v1"
    assert info["sentiment-lstm"]["version"] == manifest["version"]


V2_INFER = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["great"]}]}


async def test_hot_swap_is_per_model(models_root, bundle_dir):
    write_softmax_bundle(models_root / "three" / "v2", "three", "v2")
    settings = make_settings(models_root=models_root, admin_token=TOKEN)
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with serve(settings) as (_, client):
        swap = {"model": "three", "version": "v2"}
        response = await client.post("/admin/model", json=swap, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["version"] == "v2"
        three = (await client.post("/predict", json={"text": "okay", "model": "three"})).json()
        assert three["model"]["version"] == "v2"
        lstm = (await client.post("/predict", json={"text": "okay"})).json()  # untouched
        assert lstm["model"]["name"] == "sentiment-lstm"
        # a bundle of another model is refused for this slot, and it keeps serving
        wrong = {"model": "three", "path": str(bundle_dir)}
        refused = await client.post("/admin/model", json=wrong, headers=headers)
        assert (
            refused.status_code == 422 and "'sentiment-lstm'" in refused.json()["error"]["message"]
        )
        again = (await client.post("/predict", json={"text": "okay", "model": "three"})).json()
        assert again["model"]["version"] == "v2"


async def test_a_models_root_without_promoted_versions_serves_nothing(tmp_path, bundle_dir):
    root = tmp_path / "models"
    copy_as(bundle_dir, root, "sentiment-lstm")
    (root / "sentiment-lstm" / "PROMOTED").unlink()
    async with serve(make_settings(models_root=root)) as (_, client):
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert "PROMOTED" in response.json()["reason"]


async def test_labels_that_are_not_polarities_score_by_the_predicted_label(tmp_path):
    bundle = write_softmax_bundle(tmp_path / "mood" / "v1", "mood", "v1", ["sad", "calm", "glad"])
    async with serve(make_settings(model_dir=bundle)) as (_, client):
        got = (await client.post("/predict", json={"text": "great, I love it"})).json()
        p = got["predictions"][0]
        assert p["label"] == "glad" and set(p["probabilities"]) == {"sad", "calm", "glad"}
        assert p["score"] == pytest.approx(max(p["probabilities"].values()), abs=1e-6)
        listed = (await client.get("/models")).json()
        assert listed["default"] == "mood" and listed["models"][0]["labels"] == [
            "sad",
            "calm",
            "glad",
        ]


def _versions(root, name: str, *versions: str, promoted: str) -> None:
    for version in versions:
        (root / name / version).mkdir(parents=True)
        (root / name / version / "manifest.json").write_text("{}")
    (root / name / "PROMOTED").write_text(promoted + "\n")


def test_workers_serve_the_versions_promoted_when_the_service_started(tmp_path):
    """sentiment-serve reads each PROMOTED once for its workers: one that uvicorn restarts
    after a promotion still serves what its siblings serve."""
    from service.cli import promoted_versions
    from service.model.registry import _locations
    from service.settings import Settings

    _versions(tmp_path, "sentiment-lstm", "n2", "n3", promoted="n2")
    _versions(tmp_path, "sentiment-general", "g10", promoted="g10")
    pins = promoted_versions(Settings(models_root=tmp_path))
    assert pins == {"sentiment-general": "g10", "sentiment-lstm": "n2"}
    (tmp_path / "sentiment-lstm" / "PROMOTED").write_text("n3\n")  # promoted meanwhile
    worker = _locations(Settings(models_root=tmp_path, pinned_versions=pins))
    assert worker["sentiment-lstm"]() == tmp_path / "sentiment-lstm" / "n2"
    unpinned = _locations(Settings(models_root=tmp_path))
    assert unpinned["sentiment-lstm"]() == tmp_path / "sentiment-lstm" / "n3"


def test_a_pinned_version_is_a_version_name_not_a_path(tmp_path):
    from service.errors import BundleError
    from service.model.registry import _locations
    from service.settings import Settings

    _versions(tmp_path, "sentiment-lstm", "n2", promoted="n2")
    worker = _locations(Settings(models_root=tmp_path, pinned_versions={"sentiment-lstm": ".."}))
    with pytest.raises(BundleError, match="not a version name"):
        worker["sentiment-lstm"]()
