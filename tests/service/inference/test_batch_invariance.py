"""A text's score does not depend on what it is batched with (padding is masked).

The same texts are scored alone (sequential requests), inside one mixed-length request,
and under 200 concurrent requests merged by the dynamic batcher: all agree to 1e-6.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.settings import Settings
from tests.support.servers import NEGATIVE_TEXT, POSITIVE_TEXT, make_settings, serve, wait_until

CONCURRENT_REQUESTS = 200

SENTENCES = [
    "Great",
    "Boring",
    "Not bad at all.",
    POSITIVE_TEXT,
    NEGATIVE_TEXT,
    "The plot was thin, but the cinematography kept me watching until the end.",
    "I don't think I've ever been so disappointed by a sequel; the first film was a classic.",
    "Tom Hanks is wonderful as always, and the score by John Williams is simply beautiful.",
    "Halfway through I checked my watch. Then I checked it again. Avoid.",
    "A clumsy script, wooden dialogue and a running time that feels twice as long as it is.",
]


def corpus(reference: list[dict]) -> list[str]:
    """IMDB-like texts from 1 token to beyond max_length: sentences, references, mixtures."""
    refs = [r["text"] for r in reference]
    texts = list(SENTENCES) + refs
    for n, (a, b) in enumerate(itertools.combinations(SENTENCES[3:], 2)):
        texts.append(f"{a} {b}" if n % 2 else f"{b}<br /><br />{a}")
    for k in (3, 8, 20, 45, 90):  # longer and longer reviews; the last ones get truncated
        texts.append(" ".join(itertools.islice(itertools.cycle(SENTENCES[2:]), k)))
    for ref in refs[:4]:
        texts.append(f"{ref} {SENTENCES[5]} {ref}")
    limit = Settings().max_text_chars
    return [t for t in dict.fromkeys(texts) if len(t) <= limit]  # unique, in order


@pytest.fixture
def texts(reference, encoder) -> list[str]:
    texts = corpus(reference)
    lengths = [len(e.ids) for e in encoder.encode(texts)]
    assert min(lengths) == 1
    assert max(lengths) == encoder.max_length
    assert any(e.truncated for e in encoder.encode(texts))
    assert len(set(lengths)) > 20  # genuinely mixed lengths
    return texts


async def score_alone(client, texts: list[str]) -> list[float]:
    scores = []
    for text in texts:  # strictly sequential: every text is its own batch
        response = await client.post("/predict", json={"text": text})
        assert response.status_code == 200, response.text
        scores.append(response.json()["predictions"][0]["score"])
    return scores


def batch_sizes(metrics_text: str) -> tuple[float, float]:
    """(number of batches, number of batches holding exactly one text)."""
    family = next(
        f for f in text_string_to_metric_families(metrics_text) if f.name == "sentiment_batch_size"
    )
    count = next(s.value for s in family.samples if s.name.endswith("_count"))
    singles = next(
        s.value
        for s in family.samples
        if s.name.endswith("_bucket") and float(s.labels["le"]) == 1.0
    )
    return count, singles


async def test_alone_equals_in_a_mixed_batch_equals_direct(texts, bundle):
    async with serve(make_settings()) as (_, client):
        alone = await score_alone(client, texts)
        response = await client.post("/predict", json={"texts": texts})
        assert response.status_code == 200, response.text
        together = [p["score"] for p in response.json()["predictions"]]
    assert together == pytest.approx(alone, abs=1e-6)
    direct = [float(bundle.score_texts([t])[0]) for t in texts]
    assert alone == pytest.approx(direct, abs=1e-6)


async def test_concurrent_requests_match_sequential_and_are_batched(texts, predict_gate):
    async with serve(make_settings()) as (app, client):
        alone = dict(zip(texts, await score_alone(client, texts), strict=True))
        runtime = app.state.models.current()

        # Requests: single texts and small lists, mixed lengths, 200 in flight at once.
        requests = []
        for i in range(CONCURRENT_REQUESTS):
            if i % 3 == 0:
                requests.append({"texts": [texts[(i + j * 7) % len(texts)] for j in range(3)]})
            else:
                requests.append({"text": texts[(i * 11) % len(texts)]})

        # Hold the first batches at the gate until texts queue up behind them, so merging
        # is certain rather than likely; every score still comes from the real model.
        predict_gate.close()
        before = batch_sizes((await client.get("/metrics")).text)
        tasks = [asyncio.create_task(client.post("/predict", json=body)) for body in requests]
        try:
            await wait_until(lambda: runtime.batcher.queue_depth >= 2)
        finally:
            predict_gate.open()
        responses = await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
        after = batch_sizes((await client.get("/metrics")).text)

    n_texts = 0
    for body, response in zip(requests, responses, strict=True):
        assert response.status_code == 200, response.text
        sent = body.get("texts") or [body["text"]]
        got = [p["score"] for p in response.json()["predictions"]]
        assert got == pytest.approx([alone[t] for t in sent], abs=1e-6)
        n_texts += len(sent)

    batches, singles = after[0] - before[0], after[1] - before[1]
    assert batches < n_texts, "no batching happened under concurrency"
    assert batches - singles >= 1, "no batch held more than one text"
    assert max(predict_gate.calls) > 1


async def test_concurrent_requests_ungated(texts):
    """The same without any gate: whatever batches form, the scores are unchanged."""
    async with serve(make_settings(max_batch_size=16)) as (_, client):
        alone = await score_alone(client, texts)
        bodies = [{"text": texts[i % len(texts)]} for i in range(CONCURRENT_REQUESTS)]
        responses = await asyncio.wait_for(
            asyncio.gather(*(client.post("/predict", json=b) for b in bodies)), timeout=120
        )
    for i, response in enumerate(responses):
        assert response.status_code == 200, response.text
        score = response.json()["predictions"][0]["score"]
        assert score == pytest.approx(alone[i % len(texts)], abs=1e-6)
