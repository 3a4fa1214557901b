"""Every speed-up, switched off, gives the reference answer: the service with all of them
on and with all of them off answer the same requests alike (tokens exactly, scores to
1e-6), and each switch really selects the simple implementation."""

from __future__ import annotations

import pytest

from bench.workloads import sample_reviews
from service.encoding.encoder import Encoder
from service.encoding.python_path import PythonPathEncoder
from service.inference.grouped import GroupedScorer
from service.inference.scorer import Scorer
from tests.support.servers import make_settings, serve
from tests.support.sessions import sessions_of, uses_shared_arena

ALL_OFF = {
    "fast_path": False,
    "python_encoder": False,
    "vocab_table": False,
    "encode_on_loop": False,
    "grouped_runs": False,
    "shared_arena": False,
    "pin_inference_threads": "off",
}
ODD_TEXTS = [
    "Café crème — “naïve” ﬁlm!!<br /><br />Didn’t love it.",
    "tab\tseparated\r\nlines",
    "中文 straße ＧＲＥＡＴ",
    "x" * 3000,
    "ok",
]


@pytest.fixture(scope="module")
def requests_to_compare() -> list[dict]:
    reviews = sample_reviews(130)
    return [
        {"texts": reviews[:64]},  # big enough for the vocab table and grouped runs
        {"texts": reviews[64:128] + ODD_TEXTS},
        {"text": reviews[128]},
        *({"text": t} for t in ODD_TEXTS),
    ]


async def answers(settings, bodies: list[dict]) -> tuple[list[dict], list[dict], object]:
    async with serve(settings) as (app, client):
        predicted, tokenized = [], []
        for body in bodies:
            for path, out in (("/predict", predicted), ("/tokenize", tokenized)):
                response = await client.post(path, json=body)
                assert response.status_code == 200, response.text
                out.append(response.json())
        return predicted, tokenized, app.state.models.current().bundle


async def test_all_speedups_off_answers_as_all_on(requests_to_compare):
    fast = await answers(make_settings(), requests_to_compare)
    plain = await answers(make_settings(**ALL_OFF), requests_to_compare)
    assert isinstance(fast[2].encoder, PythonPathEncoder)
    assert isinstance(fast[2].scorer, GroupedScorer)
    assert type(plain[2].encoder) is Encoder and type(plain[2].scorer) is Scorer
    assert all(uses_shared_arena(s) for s in sessions_of(fast[2].scorer))
    assert not uses_shared_arena(plain[2].scorer.session)
    assert fast[1] == plain[1]  # /tokenize: ids, tokens and flags exactly
    for got, want in zip(fast[0], plain[0], strict=True):
        assert got["model"] == want["model"]
        for g, w in zip(got["predictions"], want["predictions"], strict=True):
            assert g["label"] == w["label"] and g["tokens"] == w["tokens"]
            assert g["score"] == pytest.approx(w["score"], abs=1e-6)


async def test_the_python_encoder_without_its_table_or_the_loop(requests_to_compare):
    settings = make_settings(vocab_table=False, encode_on_loop=False)
    async with serve(settings) as (app, client):
        encoder = app.state.models.current().bundle.encoder
        assert isinstance(encoder, PythonPathEncoder) and encoder.table is None
        response = await client.post("/predict", json=requests_to_compare[0])
        assert response.status_code == 200
