"""Bundle loading: SHA-256 verification and the self-check keep a bad bundle out of service."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sentiment_core.bundle import find_latest_bundle
from service.errors import BundleError
from service.model.loader import load_bundle
from tests.support.servers import copy_bundle, flip_byte, make_settings, serve


async def not_ready_reason(model_dir: Path, **settings) -> str:
    """Start an app on ``model_dir``; it must stay up but not ready. Returns the reason."""
    async with serve(make_settings(model_dir=model_dir, **settings)) as (_, client):
        assert (await client.get("/health/live")).status_code == 200
        response = await client.get("/health/ready")
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["status"] == "not_ready"
        assert body["model"] is None
        assert body["reason"]

        predict = await client.post("/predict", json={"text": "a fine film"})
        assert predict.status_code == 503, predict.text
        assert predict.json()["error"]["code"] == "not_ready"
        assert "Retry-After" in predict.headers
        for path in ("/tokenize",):
            response = await client.post(path, json={"text": "a fine film"})
            assert response.status_code == 503
        assert (await client.get("/model")).status_code == 503

        metrics = (await client.get("/metrics")).text
        assert "sentiment_ready 0.0" in metrics
        return body["reason"]


# -- load_bundle ---------------------------------------------------------------------------
def test_good_bundle_loads_and_matches_the_reference_scores(bundle_dir, manifest, reference):
    bundle = load_bundle(bundle_dir)
    assert bundle.name == manifest["name"]
    assert bundle.version == manifest["version"]
    assert bundle.labels == manifest["labels"]
    assert bundle.encoder.max_length == manifest["input"]["max_length"]
    texts = [r["text"] for r in reference]
    want = np.array([r["score"] for r in reference])
    np.testing.assert_allclose(bundle.score_texts(texts), want, atol=1e-5)
    alone = np.array([bundle.score_texts([t])[0] for t in texts])
    np.testing.assert_allclose(alone, want, atol=1e-5)
    summary = bundle.summary()
    assert summary["files"] == {k: v["sha256"] for k, v in manifest["files"].items()}


def test_int8_variant_loads_when_the_bundle_has_one(bundle_dir, manifest, reference):
    variants = manifest.get("variants", {})
    if "int8" not in variants:
        with pytest.raises(BundleError, match="no 'int8' variant"):
            load_bundle(bundle_dir, variant="int8")
        return
    bundle = load_bundle(bundle_dir, variant="int8")
    assert bundle.variant == "int8"
    scores = bundle.score_texts([r["text"] for r in reference])
    assert np.all((scores >= 0) & (scores <= 1))


def test_find_latest_bundle_takes_the_newest_complete_version(tmp_path):
    base = tmp_path / "sentiment-lstm"
    for version in ("20250101-000000", "20260101-000000", "20240101-000000"):
        (base / version).mkdir(parents=True)
        (base / version / "manifest.json").write_text("{}")
    (base / "20270101-000000").mkdir()  # incomplete: no manifest
    assert find_latest_bundle(tmp_path, "sentiment-lstm").name == "20260101-000000"
    with pytest.raises(BundleError, match="no model bundle"):
        find_latest_bundle(tmp_path / "empty", "sentiment-lstm")


def test_load_bundle_names_the_tampered_file(bundle_dir, tmp_path):
    copy = copy_bundle(bundle_dir, tmp_path / "b")
    flip_byte(copy / "model.onnx")
    with pytest.raises(BundleError, match=r"model\.onnx: sha256"):
        load_bundle(copy)


# -- through the app: a bad bundle never serves ----------------------------------------------
async def test_flipped_byte_in_model_stays_not_ready(bundle_dir, manifest, tmp_path):
    copy = copy_bundle(bundle_dir, tmp_path / "b")
    model_file = manifest.get("model_file", "model.onnx")
    flip_byte(copy / model_file)
    reason = await not_ready_reason(copy)
    assert model_file in reason
    assert "sha256" in reason


async def test_edited_tokenizer_stays_not_ready(bundle_dir, manifest, tmp_path):
    copy = copy_bundle(bundle_dir, tmp_path / "b")
    tokenizer_file = manifest.get("tokenizer_file", "tokenizer.json")
    tokenizer = json.loads((copy / tokenizer_file).read_text())
    vocab = tokenizer["model"]["vocab"]
    first, second = sorted(vocab, key=vocab.get)[2:4]  # swap two real words' ids
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (copy / tokenizer_file).write_text(json.dumps(tokenizer))
    reason = await not_ready_reason(copy)
    assert tokenizer_file in reason
    assert "sha256" in reason


async def test_missing_file_stays_not_ready(bundle_dir, manifest, tmp_path):
    copy = copy_bundle(bundle_dir, tmp_path / "b")
    tokenizer_file = manifest.get("tokenizer_file", "tokenizer.json")
    (copy / tokenizer_file).unlink()
    reason = await not_ready_reason(copy)
    assert tokenizer_file in reason
    assert "missing" in reason


async def test_missing_manifest_stays_not_ready(bundle_dir, tmp_path):
    copy = copy_bundle(bundle_dir, tmp_path / "b")
    (copy / "manifest.json").unlink()
    reason = await not_ready_reason(copy)
    assert "manifest.json" in reason


async def test_corrupt_manifest_stays_not_ready(bundle_dir, tmp_path):
    copy = copy_bundle(bundle_dir, tmp_path / "b")
    (copy / "manifest.json").write_text('{"name": "sentiment-lstm", ')
    reason = await not_ready_reason(copy)
    assert "not valid JSON" in reason


async def test_altered_reference_score_fails_the_self_check(bundle_dir, tmp_path):
    def nudge(manifest: dict) -> None:
        ref = manifest["reference"][0]
        ref["score"] = ref["score"] + 0.01 if ref["score"] < 0.5 else ref["score"] - 0.01

    copy = copy_bundle(bundle_dir, tmp_path / "b", edit_manifest=nudge)
    reason = await not_ready_reason(copy)
    assert "self-check" in reason
    assert "reference 0" in reason


async def test_manifest_without_reference_texts_is_refused(bundle_dir, tmp_path):
    copy = copy_bundle(bundle_dir, tmp_path / "b", edit_manifest=lambda m: m.pop("reference"))
    reason = await not_ready_reason(copy)
    assert "reference" in reason


async def test_file_names_with_paths_are_refused(bundle_dir, tmp_path):
    def escape(manifest: dict) -> None:
        manifest["files"]["../manifest.json"] = {"sha256": "0" * 64}

    copy = copy_bundle(bundle_dir, tmp_path / "b", edit_manifest=escape)
    reason = await not_ready_reason(copy)
    assert "must not contain paths" in reason


async def test_unsupported_format_version_is_refused(bundle_dir, tmp_path):
    copy = copy_bundle(
        bundle_dir, tmp_path / "b", edit_manifest=lambda m: m.update(format_version=99)
    )
    reason = await not_ready_reason(copy)
    assert "format_version" in reason


async def test_no_bundle_at_all_stays_not_ready(tmp_path):
    async with serve(make_settings(models_root=tmp_path)) as (_, client):
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert "no model bundle" in response.json()["reason"]


async def test_copy_of_the_good_bundle_is_ready(bundle_dir, manifest, tmp_path):
    """The copies above differ from a working bundle only by what each test broke."""
    copy = copy_bundle(bundle_dir, tmp_path / "b")
    async with serve(make_settings(model_dir=copy)) as (_, client):
        response = await client.get("/health/ready")
        assert response.status_code == 200, response.text
        assert response.json()["model"]["version"] == manifest["version"]


MALFORMED = {
    "input without max_length": (lambda m: m["input"].pop("max_length"), "max_length"),
    "reference without score": (lambda m: m["reference"][0].pop("score"), "score"),
    "unknown truncation policy": (lambda m: m["input"].update(truncation="middle"), "middle"),
    "files is a list": (lambda m: m.update(files=sorted(m["files"])), "malformed"),
    "one label": (lambda m: m.update(labels=["positive"]), "labels"),
    "labels repeated": (lambda m: m.update(labels=["positive", "positive"]), "labels"),
    "numeric version": (lambda m: m.update(version=3), "version"),
    "threshold not a number": (lambda m: m["decision"].update(threshold="high"), "malformed"),
}


@pytest.mark.parametrize("edit, says", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_manifest_stays_not_ready(bundle_dir, tmp_path, edit, says):
    """manifest.json is not hashed: a malformed one is refused, not a crash at startup."""
    copy = copy_bundle(bundle_dir, tmp_path / "b", edit_manifest=edit)
    with pytest.raises(BundleError, match=says):
        load_bundle(copy)
    reason = await not_ready_reason(copy)
    assert says in reason
