"""The page at / and the offline docs, over HTTP (tests/browser/ runs them in Chromium)."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

from tests.support.servers import make_settings, serve

PAGES = ("/", "/docs", "/redoc")
OWN_FILES = [
    *(files("service.http") / "pages").iterdir(),
    *(files("service.http") / "static" / "ui").iterdir(),
    *(files("service.http") / "static" / "docs").iterdir(),
]


async def test_pages_and_their_files_are_served_with_a_strict_policy():
    async with serve(make_settings()) as (_, client):
        for path in PAGES:
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith("text/html")
            csp = response.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src 'self';" in csp, csp
            assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
            assert "frame-ancestors 'none'" in csp
            assert response.headers["x-content-type-options"] == "nosniff"
            for ref in re.findall(r'(?:src|href)="([^"]+)"', response.text):
                asset = await client.get(f"/{ref}" if not ref.startswith("/") else ref)
                assert asset.status_code == 200, (path, ref)
                assert asset.headers["x-content-type-options"] == "nosniff"
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
            assert (await client.get(f"/static/docs/{asset}")).status_code == 200


def test_no_page_or_script_of_ours_loads_anything_from_elsewhere():
    """Relative URLs only: nothing from a CDN, and it works behind a path prefix."""
    for path in OWN_FILES:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?:src|href)\s*=\s*\"?(?:https?:)?//", text), path.name
        assert 'fetch("http' not in text and "fetch('http" not in text, path.name
        assert "innerHTML" not in text and "outerHTML" not in text, path.name
        assert "insertAdjacentHTML" not in text and "document.write" not in text, path.name


def test_pages_hold_no_inline_script_or_style():
    for path in OWN_FILES:
        if path.name.endswith(".html"):
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), path.name
            assert "<style" not in text and " style=" not in text, path.name
            assert not re.search(r"\son[a-z]+\s*=", text), path.name


@pytest.mark.parametrize("ui", [True, False])
async def test_sentiment_ui_false_switches_the_page_off_and_keeps_the_api(ui):
    async with serve(make_settings(ui=ui)) as (_, client):
        assert (await client.get("/")).status_code == (200 if ui else 404)
        assert (await client.get("/static/ui/app.js")).status_code == (200 if ui else 404)
        assert (await client.get("/docs")).status_code == 200  # the docs stay
        response = await client.post("/predict", json={"text": "good"})
        assert response.status_code == 200


async def test_both_endpoints_are_in_the_schema_with_examples():
    async with serve(make_settings()) as (_, client):
        schema = (await client.get("/openapi.json")).json()
    assert "/" not in schema["paths"] and "/docs" not in schema["paths"]
    components = schema["components"]["schemas"]
    explain = schema["paths"]["/explain"]["post"]
    request_ref = explain["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert components[request_ref.split("/")[-1]]["examples"]
    response_ref = explain["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert components[response_ref.split("/")[-1]]["examples"][0]["tokens"]
    predict_request = components["PredictRequest"]
    assert any(e.get("sentences") for e in predict_request["examples"])
    assert "sentences" in predict_request["properties"]
    assert any(
        "sentences" in p
        for e in components["PredictResponse"]["examples"]
        for p in e["predictions"]
    )
    assert {"mixed", "sentences"} <= set(components["Prediction"]["properties"])
