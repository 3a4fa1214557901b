"""Errors that say what to do (issue 20): each message is checked word for word where it
matters, and every status code stays what it was."""

from __future__ import annotations

import pytest
import pytest_asyncio

from service.http.app import package_version
from tests.support.servers import make_settings, serve

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client():
    async with serve(make_settings(admin_token="admin-token-0123456789")) as (_, client):
        yield client


async def error_of(client, path: str, body: bytes, status: int = 422) -> dict:
    response = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    return response.json()["error"]


@pytest.mark.parametrize("path", ["/predict", "/tokenize"])
async def test_an_unknown_field_names_it_and_the_expected_ones(client, path):
    error = await error_of(client, path, b'{"message": "a fine film"}')
    assert error["message"] == (
        "unknown field 'message'; expected 'text' (a string) or 'texts' (a list of strings), "
        "and optionally 'model' (a name from GET /models)"
    )
    assert error["details"][0]["field"] == "message"


async def test_the_admin_body_names_its_own_fields(client):
    response = await client.post(
        "/admin/model",
        json={"versoin": "x"},
        headers={"authorization": "Bearer admin-token-0123456789"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith(
        "unknown field 'versoin'; expected 'version' (a version directory) or 'path'"
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            b'[{"text": "a fine film"}]',
            'the body must be a JSON object like {"text": "..."}, not an array',
        ),
        (b"", 'the body is empty: send a JSON object like {"text": "..."}'),
        (b'"a fine film"', 'the body must be a JSON object like {"text": "..."}, not a string'),
    ],
)
async def test_a_body_that_is_not_an_object_says_what_to_send(client, body, says):
    error = await error_of(client, "/predict", body)
    assert error["message"] == says
    assert error["details"] == [{"field": "body", "message": says}]


@pytest.mark.parametrize("space", ["\t", "\n", "\r", "\v", "\f", "\r\n"])
async def test_common_whitespace_is_text(client, space):
    response = await client.post("/predict", json={"text": f"a fine{space}film"})
    assert response.status_code == 200, response.text


async def test_a_control_character_is_named_with_its_position(client):
    error = await error_of(client, "/predict", b'{"text": "good\\u001b[31m film"}')
    assert error["message"] == (
        "text contains control characters (U+001B at character 4): NUL, ESC, DEL and the "
        "other C0 codes are refused; tab, newline, carriage return, vertical tab and form "
        "feed are accepted"
    )


async def test_a_trailing_slash_is_a_404_that_names_the_route(client):
    response = await client.post("/predict/", json={"text": "fine"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no route POST /predict/; did you mean /predict?"
    assert "location" not in response.headers


async def test_health_live_is_only_a_status(client):
    assert (await client.get("/health/live")).json() == {"status": "ok"}


async def test_openapi_names_the_package_version_the_admin_scheme_and_tokenize_fields(client):
    schema = (await client.get("/openapi.json")).json()
    assert schema["info"]["version"] == package_version() != "0+unknown"
    assert schema["components"]["securitySchemes"]["AdminToken"]["scheme"] == "bearer"
    assert schema["paths"]["/admin/model"]["post"]["security"] == [{"AdminToken": []}]
    fields = schema["components"]["schemas"]["TokenizeRequest"]["properties"]
    assert fields["text"]["description"] == "One text to tokenize"
    assert "score" not in str(fields)


async def test_metrics_have_no_created_series(client):
    await client.post("/predict", json={"text": "fine"})
    text = (await client.get("/metrics")).text
    assert "sentiment_requests_total" in text and "_created" not in text
