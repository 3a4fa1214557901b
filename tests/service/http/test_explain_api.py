"""POST /explain and /predict with "sentences": true, in process, against the real bundle.

Expected values come from the bundle itself (its encoder and onnxruntime session), never
from figures written here.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import pytest_asyncio

from service.explain.sentences import sentence_spans
from tests.support.bundles import copy_as, promote_by_hand, write_softmax_bundle
from tests.support.servers import NEGATIVE_TEXT, POSITIVE_TEXT, make_settings, serve, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

MIXED_REVIEW = (
    "The first hour is excellent: a sharp script and a superb cast.<br /><br />"
    "Then the café scene drags and the ending is terrible, a boring mess. What a waste!"
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client():
    async with serve(make_settings(explain_max_tokens=64, max_sentences_per_request=20)) as (
        _,
        client,
    ):
        yield client


async def post(client, path: str, body: dict, status: int = 200) -> dict:
    response = await client.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json()


def probability_of(bundle, sequences, label: str) -> np.ndarray:
    index = bundle.labels.index(label)
    return bundle.manifest.probabilities(bundle.outputs(sequences))[:, index]


def assert_same_prediction(got: dict, want: dict) -> None:
    """Equal up to float noise (a text's score may differ by 1e-7 with its batch)."""
    assert got["label"] == want["label"]
    assert got["score"] == pytest.approx(want["score"], abs=1e-6)
    assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)
    for key in ("tokens", "truncated", "unknown_tokens"):
        assert got[key] == want[key], key


# -- /explain ----------------------------------------------------------------------------------
async def test_explain_weights_are_leave_one_out_differences(client, bundle, encoder):
    text = "The food was excellent but the service was terrible."
    data = await post(client, "/explain", {"text": text})
    assert set(data) == {"model", "prediction", "target", "method", "tokens"}
    assert data["method"] == "leave-one-out"
    predicted = await post(client, "/predict", {"text": text})
    assert_same_prediction(data["prediction"], predicted["predictions"][0])
    assert data["target"] == data["prediction"]["label"]

    ids = list(encoder.encode([text])[0].ids)
    full = probability_of(bundle, [ids], data["target"])[0]
    without = probability_of(
        bundle, [ids[:i] + ids[i + 1 :] for i in range(len(ids))], data["target"]
    )
    assert [t["weight"] for t in data["tokens"]] == pytest.approx(
        (full - without).tolist(), abs=1e-5
    )
    assert [t["text"] for t in data["tokens"]] == [
        "The", "food", "was", "excellent", "but", "the", "service", "was", "terrible", "."
    ]  # fmt: skip
    for t in data["tokens"]:
        assert text[t["start"] : t["end"]] == t["text"]


async def test_explain_offsets_point_into_the_text_as_sent(client):
    text = "Don’t miss it 😀<br />Café was great, ﬁlm naïve"
    data = await post(client, "/explain", {"text": text})
    shown = [(t["text"], t["token"]) for t in data["tokens"]]
    assert shown == [
        ("Don’t", "don't"), ("miss", "miss"), ("it", "it"), ("😀", "[UNK]"), ("Café", "cafe"),
        ("was", "was"), ("great", "great"), (",", ","), ("ﬁlm", "film"), ("naïve", "naive"),
    ]  # fmt: skip
    for t in data["tokens"]:
        assert text[t["start"] : t["end"]] == t["text"]


async def test_explain_every_variant_goes_through_the_batcher(predict_gate):
    async with serve(make_settings()) as (_, client):
        predict_gate.calls.clear()
        data = await post(client, "/explain", {"text": "A fine, moving film."})
    assert sum(predict_gate.calls) == len(data["tokens"]) + 1  # the text and each variant


async def test_explain_over_the_token_limit_is_a_clear_422(client):
    text = "good " * 65
    body = await post(client, "/explain", {"text": text}, status=422)
    message = body["error"]["message"]
    assert "65 tokens" in message and "at most 64" in message
    assert "SENTIMENT_EXPLAIN_MAX_TOKENS" in message
    assert body["error"]["details"][0]["field"] == "text"
    await post(client, "/explain", {"text": "good " * 64})  # at the limit: explained


async def test_explain_limit_is_bounded_by_the_queue(bundle):
    async with serve(make_settings(queue_size=300, max_texts_per_request=200)) as (_, client):
        body = await post(client, "/explain", {"text": "good " * 300}, status=422)
    assert "at most 299 (SENTIMENT_QUEUE_SIZE - 1" in body["error"]["message"]  # its own cause


async def test_explain_text_without_tokens(client):
    data = await post(client, "/explain", {"text": "\u0301\u0301"})
    assert data["tokens"] == [] and data["prediction"]["tokens"] == 1  # read as [UNK]


async def test_explain_names_unknown_models_and_fields(client):
    body = await post(client, "/explain", {"text": "good", "model": "nope"}, status=404)
    assert "nope" in body["error"]["message"]
    body = await post(client, "/explain", {"texts": ["good"]}, status=422)
    assert {d["field"] for d in body["error"]["details"]} == {"text", "texts"}
    body = await post(client, "/explain", {"text": "   "}, status=422)
    assert "empty or only whitespace" in body["error"]["message"]


async def test_explain_full_queue_gets_503_with_retry_after(predict_gate):
    settings = make_settings(queue_size=40, max_texts_per_request=8, max_batch_size=8)
    async with serve(settings) as (_, client):
        predict_gate.close()
        hold = [
            asyncio.create_task(client.post("/predict", json={"texts": ["x"] * 8}))
            for _ in range(6)
        ]
        await wait_until(predict_gate.entered.is_set)
        await asyncio.sleep(0.05)  # the rest are queued now
        response = await client.post("/explain", json={"text": "a fine film " * 10})
        predict_gate.open()
        statuses = {r.status_code for r in await asyncio.gather(*hold)}
    assert 200 in statuses and statuses <= {200, 503}  # the queue was full, then drained
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    assert response.json()["error"]["code"] == "overloaded"


# -- /predict with sentences -------------------------------------------------------------------
async def test_sentences_are_scored_alone_with_offsets(client, bundle):
    data = await post(client, "/predict", {"text": MIXED_REVIEW, "sentences": True})
    prediction = data["predictions"][0]
    plain = (await post(client, "/predict", {"text": MIXED_REVIEW}))["predictions"][0]
    assert_same_prediction(prediction, plain)  # the document keeps its own answer
    sentences = prediction["sentences"]
    assert [s["text"] for s in sentences] == [
        "The first hour is excellent: a sharp script and a superb cast.",
        "Then the café scene drags and the ending is terrible, a boring mess.",
        "What a waste!",
    ]
    alone = bundle.manifest.probabilities(
        bundle.outputs(bundle.encoder.encode_ids([s["text"] for s in sentences]))
    )
    for s, probabilities in zip(sentences, alone, strict=True):
        assert MIXED_REVIEW[s["start"] : s["end"]] == s["text"]
        assert list(s["probabilities"].values()) == pytest.approx(probabilities.tolist(), abs=1e-5)
        assert s["label"] == bundle.labels[int(np.argmax(probabilities))]
    assert [s["label"] for s in sentences] == ["positive", "negative", "negative"]
    assert prediction["mixed"] is True


async def test_mixed_only_when_confident_sentences_disagree(client):
    texts = [POSITIVE_TEXT, NEGATIVE_TEXT, f"{POSITIVE_TEXT} {NEGATIVE_TEXT}", "Great."]
    data = await post(client, "/predict", {"texts": texts, "sentences": True})
    assert [p["mixed"] for p in data["predictions"]] == [False, False, True, False]
    one = data["predictions"][3]
    assert len(one["sentences"]) == 1 and one["sentences"][0]["text"] == "Great."
    assert one["sentences"][0]["probabilities"] == one["probabilities"]


async def test_sentences_offsets_are_code_points(client):
    text = "😀😀 Loved it. Hated it 😀."
    data = await post(client, "/predict", {"text": text, "sentences": True})
    spans = [(s["start"], s["end"]) for s in data["predictions"][0]["sentences"]]
    assert spans == sentence_spans(text) == [(0, 12), (13, 24)]


async def test_sentences_false_or_absent_answers_as_before(client):
    for body in ({"text": "good"}, {"text": "good", "sentences": False}):
        prediction = (await post(client, "/predict", body))["predictions"][0]
        assert "sentences" not in prediction and "mixed" not in prediction


async def test_too_many_sentences_is_a_clear_422(client):
    body = await post(client, "/predict", {"text": "Good. " * 21, "sentences": True}, status=422)
    assert "21 sentences" in body["error"]["message"]
    assert "SENTIMENT_MAX_SENTENCES_PER_REQUEST" in body["error"]["message"]
    assert body["error"]["details"][0]["field"] == "sentences"
    await post(client, "/predict", {"text": "Good. " * 20, "sentences": True})


async def test_sentences_must_be_a_boolean(client):
    for value in ("yes", 1, None, ["a"]):
        body = await post(client, "/predict", {"text": "good", "sentences": value}, status=422)
        assert body["error"]["details"][0]["field"] == "sentences", body
    body = await post(client, "/tokenize", {"text": "good", "sentences": True}, status=422)
    assert "sentences" in body["error"]["message"]  # /tokenize has no such field


# -- models with other labels ------------------------------------------------------------------
async def test_sentences_and_explain_with_other_label_sets(tmp_path, bundle_dir):
    """Three labels (negative, neutral, positive) and labels that are not polarities."""
    root = tmp_path / "models"
    copy_as(bundle_dir, root, "sentiment-lstm")
    write_softmax_bundle(root / "three" / "v1", "three", "v1")
    promote_by_hand(root, "three", "v1")
    write_softmax_bundle(root / "mood" / "v1", "mood", "v1", ["sad", "calm", "glad"])
    promote_by_hand(root, "mood", "v1")
    text = "Great superb wonderful. Awful terrible boring."
    async with serve(make_settings(models_root=root, default_model="sentiment-lstm")) as (_, c):
        three = await post(c, "/predict", {"text": text, "model": "three", "sentences": True})
        (prediction,) = three["predictions"]
        assert [s["label"] for s in prediction["sentences"]] == ["positive", "negative"]
        assert all(len(s["probabilities"]) == 3 for s in prediction["sentences"])
        assert prediction["mixed"] is True
        mood = await post(c, "/predict", {"text": text, "model": "mood", "sentences": True})
        assert [s["label"] for s in mood["predictions"][0]["sentences"]] == ["glad", "sad"]
        assert mood["predictions"][0]["mixed"] is True  # two confident, different labels
        calm = await post(
            c, "/predict", {"text": "Okay average fine.", "model": "mood", "sentences": True}
        )
        assert calm["predictions"][0]["mixed"] is False

        explained = await post(c, "/explain", {"text": "An awful, boring film.", "model": "three"})
    assert explained["model"]["name"] == "three" and explained["target"] == "negative"
    weights = {t["text"]: t["weight"] for t in explained["tokens"]}
    assert weights["awful"] > 0 and weights["boring"] > 0
    assert max(weights, key=weights.get) in {"awful", "boring"}
