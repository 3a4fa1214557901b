"""The HTTP API against the real bundle and onnxruntime (one app for the whole module)."""

from __future__ import annotations

import math
import re

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import NEGATIVE_TEXT, POSITIVE_TEXT, make_settings, serve

pytestmark = pytest.mark.asyncio(loop_scope="module")

MIXED = [
    POSITIVE_TEXT,
    "Boring",
    NEGATIVE_TEXT,
    "It was fine, I guess. Nothing special, nothing terrible; the popcorn was good.",
    "zzxqv blorptastic wuggle",  # words no vocabulary has
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client():
    async with serve(make_settings()) as (_, client):
        yield client


async def predict(client: httpx.AsyncClient, **body) -> dict:
    response = await client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def metric_families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


# -- /predict ------------------------------------------------------------------------------
async def test_predict_one_text_shape(client, manifest):
    data = await predict(client, text=POSITIVE_TEXT)
    assert set(data) == {"model", "predictions"}
    assert data["model"] == {"name": manifest["name"], "version": manifest["version"]}
    assert len(data["predictions"]) == 1
    p = data["predictions"][0]
    assert set(p) == {"label", "score", "probabilities", "tokens", "truncated", "unknown_tokens"}
    assert 0.0 <= p["score"] <= 1.0


async def test_predict_texts_one_prediction_per_text_in_order(client, bundle, manifest):
    data = await predict(client, texts=MIXED)
    predictions = data["predictions"]
    assert len(predictions) == len(MIXED)
    expected = bundle.score_texts(MIXED)
    for p, want in zip(predictions, expected, strict=True):
        assert p["score"] == pytest.approx(float(want), abs=1e-6)
    # and each equals the same text asked for alone
    for text, p in zip(MIXED, predictions, strict=True):
        alone = (await predict(client, text=text))["predictions"][0]
        assert alone["score"] == pytest.approx(p["score"], abs=1e-6)


async def test_label_follows_score_and_threshold(client, manifest):
    negative, positive = manifest["labels"]
    threshold = float(manifest["decision"]["threshold"])
    for p in (await predict(client, texts=MIXED))["predictions"]:
        assert p["label"] == (positive if p["score"] >= threshold else negative)
        probs = p["probabilities"]
        assert probs["positive"] == pytest.approx(p["score"], abs=1e-12)
        assert math.isclose(probs["negative"] + probs["positive"], 1.0, abs_tol=1e-9)
        assert 0.0 <= probs["negative"] <= 1.0


async def test_positive_text_scores_above_negative_text(client):
    pos, neg = (await predict(client, texts=[POSITIVE_TEXT, NEGATIVE_TEXT]))["predictions"]
    assert pos["score"] > neg["score"]


async def test_clearly_positive_and_negative_labels(client):
    """Holds for any usable model (the weak placeholder bundle included)."""
    pos, neg = (await predict(client, texts=[POSITIVE_TEXT, NEGATIVE_TEXT]))["predictions"]
    assert pos["label"] == "positive", pos
    assert neg["label"] == "negative", neg


async def test_predict_token_fields_match_tokenize(client):
    long_text = " ".join([POSITIVE_TEXT] * 60)
    texts = [*MIXED, long_text]
    predictions = (await predict(client, texts=texts))["predictions"]
    response = await client.post("/tokenize", json={"texts": texts})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    for p, t in zip(predictions, results, strict=True):
        assert p["tokens"] == t["length"] == len(t["ids"])
        assert p["truncated"] == t["truncated"]
        assert p["unknown_tokens"] == t["unknown_tokens"]
    assert predictions[-1]["truncated"] is True
    assert predictions[MIXED.index("zzxqv blorptastic wuggle")]["unknown_tokens"] > 0


async def test_reference_scores_equal_the_training_jobs(client, reference):
    """The service scores the manifest's reference texts as the training job did."""
    texts = [r["text"] for r in reference]
    together = (await predict(client, texts=texts))["predictions"]
    for ref, p in zip(reference, together, strict=True):
        assert p["score"] == pytest.approx(ref["score"], abs=1e-5), ref["text"][:60]
    for ref in reference:
        alone = (await predict(client, text=ref["text"]))["predictions"][0]
        assert alone["score"] == pytest.approx(ref["score"], abs=1e-5), ref["text"][:60]


# -- /tokenize -----------------------------------------------------------------------------
async def test_tokenize_equals_the_bundle_encoder(client, encoder, reference):
    texts = [*MIXED, *(r["text"] for r in reference)]
    response = await client.post("/tokenize", json={"texts": texts})
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"model", "results"}
    expected = encoder.encode(texts)
    assert len(data["results"]) == len(texts)
    for got, want in zip(data["results"], expected, strict=True):
        assert got["ids"] == want.ids
        assert got["tokens"] == want.tokens
        assert got["length"] == len(got["ids"]) == len(got["tokens"])
        assert got["truncated"] == want.truncated
        assert got["unknown_tokens"] == sum(1 for i in want.ids if i == 1)


async def test_tokenize_one_text(client, encoder):
    response = await client.post("/tokenize", json={"text": POSITIVE_TEXT})
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert result["ids"] == encoder.encode([POSITIVE_TEXT])[0].ids
    assert result["truncated"] is False


async def test_tokenize_truncates_a_very_long_text(client, manifest, encoder):
    max_length = int(manifest["input"]["max_length"])
    long_text = " ".join([NEGATIVE_TEXT] * (max_length // 5 + 10))
    assert encoder.encode([long_text])[0].original_length > max_length
    response = await client.post("/tokenize", json={"text": long_text})
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert result["truncated"] is True
    assert result["length"] == len(result["ids"]) == max_length
    assert result["ids"] == encoder.encode([long_text])[0].ids


# -- health, model, metrics ------------------------------------------------------------------
async def test_live(client):
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_ready_names_the_model(client, manifest):
    response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["status"] == "ok"
    assert data["model"] == {"name": manifest["name"], "version": manifest["version"]}


async def test_model_summary(client, manifest):
    response = await client.get("/model")
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["name"] == manifest["name"]
    assert data["version"] == manifest["version"]
    assert data["variant"] == "float"
    assert data["labels"] == manifest["labels"]
    assert data["threshold"] == manifest["decision"]["threshold"]
    assert data["max_length"] == manifest["input"]["max_length"]
    assert data["truncation"] == manifest["input"]["truncation"]
    assert data["metrics"] == manifest.get("metrics", {})
    assert data["files"] == {name: info["sha256"] for name, info in manifest["files"].items()}


async def test_metrics_prometheus_text(client, manifest):
    await predict(client, texts=MIXED)  # so the batch histograms have samples
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "sentiment_requests",
        "sentiment_batch_size",
        "sentiment_padding_ratio",
        "sentiment_queue_depth",
        "sentiment_model_info",
    ):
        assert name in text
    families = metric_families(text)
    info = [s for s in families["sentiment_model_info"].samples if s.value == 1]
    assert len(info) == 1
    assert info[0].labels["name"] == manifest["name"]
    assert info[0].labels["version"] == manifest["version"]
    requests = families["sentiment_requests"].samples
    assert any(
        s.labels.get("route") == "/predict" and s.labels.get("status") == "200" and s.value >= 1
        for s in requests
    )
    batch_count = [s for s in families["sentiment_batch_size"].samples if s.name.endswith("_count")]
    assert batch_count and batch_count[0].value >= 1
    ready = families["sentiment_ready"].samples
    assert ready[0].value == 1


# -- request ids, OpenAPI ------------------------------------------------------------------
async def test_request_id_echoed(client):
    response = await client.get("/health/live", headers={"X-Request-ID": "trace-42.a:b"})
    assert response.headers["x-request-id"] == "trace-42.a:b"


async def test_request_id_generated_when_absent(client):
    first = await client.get("/health/live")
    second = await client.get("/health/live")
    for response in (first, second):
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_unsafe_request_id_is_replaced(client):
    response = await client.get("/health/live", headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_error_body_carries_the_request_id(client):
    response = await client.post("/predict", json={"text": ""}, headers={"X-Request-ID": "req-1"})
    assert response.status_code == 422
    assert response.headers["x-request-id"] == "req-1"
    assert response.json()["request_id"] == "req-1"


async def test_openapi_has_request_examples(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    for path in ("/predict", "/tokenize"):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
        examples = body.get("examples") or spec["components"]["schemas"][ref].get("examples")
        assert examples, f"{path} has no request examples"
        if isinstance(examples, dict):  # OpenAPI media-type examples: {name: {"value": ...}}
            examples = [e["value"] for e in examples.values()]
        for example in examples:  # every documented example is a valid request
            response = await client.post(path, json=example)
            assert response.status_code == 200, (example, response.text)
    for path in ("/predict", "/tokenize", "/health/live", "/health/ready", "/model", "/metrics"):
        assert path in spec["paths"]


async def test_a_path_with_a_final_newline_matches_no_route(client):
    """Route patterns end in "$", which matches before a final newline too: /predict%0A
    was answered as /predict, /health/live%0a as /health/live."""
    for method, path in (
        ("POST", "/predict%0A"),
        ("GET", "/health/live%0a"),
        ("POST", "/explain%0A%0A"),
    ):
        response = await client.request(method, path, json={"text": "fine"})
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert (await client.get("/health/live")).status_code == 200
