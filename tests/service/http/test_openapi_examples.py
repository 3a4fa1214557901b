"""The OpenAPI response examples (service/http/examples.py) are what the committed default
model really answers to the request examples beside them, so /docs never shows a stale
model's figures."""

from __future__ import annotations

import pytest

from service.http.examples import EXPLAIN_EXAMPLE, PREDICT_EXAMPLE, SENTENCES_EXAMPLE
from service.http.schemas import PredictRequest, PredictResponse
from service.http.schemas_explain import ExplainRequest
from tests.support.servers import make_settings, serve

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The examples carry four decimals.
TOLERANCE = 1.5e-4


def assert_close(got: object, want: object, where: str = "") -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), where
        for key in want:
            assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, abs=TOLERANCE), where
    else:
        assert got == want, where


def examples_of(schema) -> list[dict]:
    return schema.model_config["json_schema_extra"]["examples"]


async def test_the_response_examples_are_the_default_models_answers():
    # Every promoted model under models/, as `make serve` loads them.
    async with serve(make_settings(models=[])) as (_, client):
        response = await client.post("/predict", json=examples_of(PredictRequest)[0])
        assert response.status_code == 200, response.text
        assert_close(response.json(), PREDICT_EXAMPLE)
        assert examples_of(PredictResponse) == [PREDICT_EXAMPLE, SENTENCES_EXAMPLE]

        sentences = examples_of(PredictRequest)[2]
        assert sentences["sentences"] is True
        response = await client.post("/predict", json=sentences)
        assert response.status_code == 200, response.text
        assert_close(response.json(), SENTENCES_EXAMPLE)

        response = await client.post("/explain", json=examples_of(ExplainRequest)[0])
        assert response.status_code == 200, response.text
        assert_close(response.json(), EXPLAIN_EXAMPLE)
