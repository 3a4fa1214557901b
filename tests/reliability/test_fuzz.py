"""Fuzzing: hypothesis properties for request bodies and the tokenizer, and schemathesis
against the live /openapi.json.

Request property: for ANY JSON value as the body, the answer is 200 exactly when the body
has a valid shape (an oracle written here from the API contract) and 422 otherwise; never
a 5xx, never a traceback. Bounded: a fixed number of examples, no deadline games.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.errors import InvalidInput
from service.explain.sentences import sentence_spans
from service.http.schemas import PredictRequest
from service.pipeline import validated_texts
from service.settings import Settings
from tests.support.reliability import (
    ADMIN_TOKEN,
    LIVE_EXPLAIN_TOKENS,
    LIVE_MAX_CHARS,
    LIVE_MAX_SENTENCES,
    LIVE_MAX_TEXTS,
    assert_no_traceback,
    request_statuses,
)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))
SCHEMATHESIS_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "30"))
# The API accepts the whitespace controls (tab, newline, vertical tab, form feed, carriage
# return) and refuses the other C0 codes and DEL.
_CONTROL = {chr(c) for c in range(32) if chr(c) not in "\t\n\x0b\x0c\r"} | {"\x7f"}

# Every code point, surrogates and control characters included.
any_char = st.characters(exclude_categories=())
any_text = st.text(any_char, max_size=60)
tricky_text = st.one_of(
    any_text,
    st.text(max_size=LIVE_MAX_CHARS + 10),  # ordinary text, sometimes over the limit
    st.sampled_from(["", " ", "\t\n", "\u3000", "a fine film", "x" * LIVE_MAX_CHARS, "\ud800"]),
)
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    tricky_text,
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(any_text, inner, max_size=5),
    max_leaves=12,
)
# Bodies close to valid (the interesting boundary), and anything at all.
near_valid = st.fixed_dictionaries(
    {},
    optional={
        "text": st.one_of(tricky_text, json_value),
        "texts": st.one_of(st.lists(tricky_text, max_size=LIVE_MAX_TEXTS + 1), json_value),
        "sentences": st.one_of(st.booleans(), json_value),
        "extra": json_value,
    },
)
# Printable-ish text (no surrogates or C0/C1 controls): mostly valid, sometimes blank or long.
plain_text = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=120)
mostly_valid = st.one_of(
    st.builds(lambda t: {"text": t}, plain_text),
    st.builds(lambda ts: {"texts": ts}, st.lists(plain_text, min_size=1, max_size=LIVE_MAX_TEXTS)),
    st.builds(lambda t: {"text": t, "sentences": True}, st.lists(plain_text).map(". ".join)),
)
bodies = st.one_of(mostly_valid, near_valid, json_value)

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def valid_texts(body, fields=("text", "texts", "sentences")) -> list[str] | None:
    """The oracle: the texts a body asks for, or None if the API must refuse it (422)."""
    if not isinstance(body, dict) or set(body) - set(fields):
        return None
    if not isinstance(body.get("sentences", False), bool):
        return None
    text, texts = body.get("text"), body.get("texts")
    if (text is None) == (texts is None):
        return None
    if text is not None:
        if not isinstance(text, str):
            return None
        items = [text]
    else:
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return None
        items = texts
    if not 1 <= len(items) <= LIVE_MAX_TEXTS:
        return None
    for t in items:
        if not t.strip() or len(t) > LIVE_MAX_CHARS or not _CONTROL.isdisjoint(t):
            return None
        if all(c.isspace() or unicodedata.category(c) == "Cf" for c in t):
            return None  # only invisible characters (U+200B, U+00AD, ...): blank
        if any("\ud800" <= c <= "\udfff" for c in t):
            return None
    return items


@pytest.fixture(scope="module")
def client(live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.base, timeout=30) as c:
        yield c


def post_json(client: httpx.Client, path: str, body) -> tuple[httpx.Response, object]:
    """Send ``body``; also return it as the server parses it (the oracle's input): JSON
    joins a high and a low surrogate written in a row into one character."""
    # json.dumps escapes lone surrogates (\ud800) and writes NaN/Infinity, as a client might
    content = json.dumps(body).encode()
    response = client.post(path, content=content, headers={"content-type": "application/json"})
    return response, json.loads(content)


@FUZZ_SETTINGS
@given(body=bodies)
def test_predict_any_json_body(client, bundle, body):
    response, body = post_json(client, "/predict", body)
    assert_no_traceback(response.content, "/predict fuzz")
    texts = valid_texts(body)
    if texts is None:
        assert response.status_code in (413, 422), (body, response.text[:300])
        assert response.json()["error"]["code"] in ("invalid_input", "payload_too_large")
        return
    if body.get("sentences") and sum(len(sentence_spans(t)) for t in texts) > LIVE_MAX_SENTENCES:
        assert response.status_code == 422 and "sentences" in response.text, response.text[:300]
        return
    assert response.status_code == 200, (body, response.text[:300])
    predictions = response.json()["predictions"]
    assert len(predictions) == len(texts)
    for text, p in zip(texts, predictions, strict=True):
        assert 0.0 <= p["score"] <= 1.0
        assert p["tokens"] == len(bundle.encoder.encode([text])[0].ids)
        assert ("sentences" in p) == bool(body.get("sentences"))
        for sentence in p.get("sentences", []):
            assert text[sentence["start"] : sentence["end"]] == sentence["text"]


explain_bodies = st.one_of(
    st.builds(lambda t: {"text": t}, plain_text),
    st.fixed_dictionaries(
        {}, optional={"text": st.one_of(tricky_text, json_value), "extra": json_value}
    ),
    json_value,
)


@FUZZ_SETTINGS
@given(body=explain_bodies)
def test_explain_any_json_body(client, bundle, body):
    response, body = post_json(client, "/explain", body)
    assert_no_traceback(response.content, "/explain fuzz")
    texts = valid_texts(body, fields=("text",))
    if texts is None or body.get("text") is None:
        assert response.status_code in (413, 422), (body, response.text[:300])
        return
    (text,) = texts
    encoded = bundle.encoder.encode([text])[0]
    if encoded.original_length > LIVE_EXPLAIN_TOKENS:
        assert response.status_code == 422 and "SENTIMENT_EXPLAIN_MAX_TOKENS" in response.text
        return
    assert response.status_code == 200, (body, response.text[:300])
    data = response.json()
    assert len(data["tokens"]) == encoded.original_length
    for token in data["tokens"]:
        assert text[token["start"] : token["end"]] == token["text"]


@FUZZ_SETTINGS
@given(body=bodies)
def test_tokenize_any_json_body(client, bundle, body):
    response, body = post_json(client, "/tokenize", body)
    assert_no_traceback(response.content, "/tokenize fuzz")
    texts = valid_texts(body, fields=("text", "texts"))
    if texts is None:
        assert response.status_code in (413, 422), (body, response.text[:300])
        return
    assert response.status_code == 200, (body, response.text[:300])
    got = [r["ids"] for r in response.json()["results"]]
    assert got == [e.ids for e in bundle.encoder.encode(texts)]


@FUZZ_SETTINGS
@given(
    body=st.one_of(
        json_value, st.fixed_dictionaries({}, optional={"version": json_value, "path": json_value})
    )
)
def test_admin_any_json_body_never_swaps_or_fails(client, manifest, body):
    """No random body names a valid bundle: always a 4xx, and the model never changes."""
    response = client.post(
        "/admin/model",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert_no_traceback(response.content, "/admin/model fuzz")
    assert response.status_code == 422, (body, response.text[:300])


# -- the tokenizer and the validation in front of it ---------------------------------------------
@settings(max_examples=300, deadline=None)
@given(text=st.text(any_char, max_size=200))
def test_every_text_the_api_accepts_can_be_encoded(bundle, text):
    """Validation and tokenizer agree: what passes validation never fails to encode
    (a lone surrogate once reached the tokenizer and became a 500)."""
    limits = Settings(max_text_chars=10_000)
    try:
        validated_texts(PredictRequest(text=text), limits)
    except InvalidInput:
        return
    encoded = bundle.encoder.encode([text])[0]
    assert 1 <= len(encoded.ids) <= bundle.encoder.max_length
    assert all(0 < i < bundle.encoder.vocab_size for i in encoded.ids)


@settings(max_examples=100, deadline=None)
@given(texts=st.lists(st.text(min_size=1, max_size=400), min_size=1, max_size=12))
def test_batch_encoding_equals_one_by_one(bundle, texts):
    """The batcher merges texts of many requests: encoding must not depend on company."""
    together = bundle.encoder.encode(texts)
    alone = [bundle.encoder.encode([t])[0] for t in texts]
    assert together == alone


@settings(max_examples=40, deadline=None)
@given(words=st.lists(st.sampled_from(["good", "bad", "film", "!", "ok", "plot"]), min_size=1))
def test_long_texts_are_cut_to_max_length_by_the_bundle_policy(bundle, words):
    max_length = bundle.encoder.max_length
    text = " ".join(words * (max_length // len(words) + 2))
    encoded = bundle.encoder.encode([text])[0]
    assert encoded.truncated and encoded.original_length > max_length
    assert len(encoded.ids) == max_length


# -- schemathesis against the live schema ----------------------------------------------------------
def test_schemathesis_finds_no_5xx_and_every_response_conforms(live, tmp_path):
    """Schema-driven (positive and negative) requests to every operation; checks:
    no 5xx, status codes / content types / bodies / headers as the schema declares."""
    checks = ",".join(
        [
            "not_a_server_error",
            "response_schema_conformance",
            "status_code_conformance",
            "content_type_conformance",
            "response_headers_conformance",
        ]
    )
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{live.base}/openapi.json",
        "--checks",
        checks,
        "--max-examples",
        str(SCHEMATHESIS_EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--header",
        f"Authorization: Bearer {ADMIN_TOKEN}",
        "--generation-database",
        "none",
        "--seed",
        os.environ.get("SCHEMATHESIS_SEED", "20261122"),
        "--request-timeout",
        "30",
        "--no-color",
    ]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    assert generated, output[-3000:]
    assert generated.group(1) == generated.group(2), output[-3000:]
    assert int(generated.group(1)) >= 7, output[-3000:]  # every operation was exercised
    statuses = request_statuses(httpx.get(f"{live.base}/metrics", timeout=10).text)
    assert not any(s >= 500 for s in statuses), statuses
    assert httpx.get(f"{live.base}/health/ready", timeout=10).status_code == 200
    print(
        f"\n[schemathesis] {generated.group(1)} cases, all passed; server statuses so far "
        f"{dict(sorted(statuses.items()))}"
    )


def test_openapi_declares_every_error_the_routes_return(live):
    """The schema is truthful about failures too: each status a route can answer (not
    just those fuzzing reaches) is declared, with the one ErrorResponse body."""
    schema = httpx.get(f"{live.base}/openapi.json", timeout=10).json()
    error_ref = "#/components/schemas/ErrorResponse"
    must = {
        ("post", "/predict"): {413, 415, 422, 500, 503, 504},
        ("post", "/tokenize"): {413, 415, 422, 503},
        ("post", "/explain"): {404, 413, 415, 422, 500, 503, 504},
        ("post", "/admin/model"): {401, 404, 413, 415, 422},
        ("get", "/model"): {413, 503},
        ("get", "/health/live"): {413},
    }
    for (method, path), statuses in must.items():
        responses = schema["paths"][path][method]["responses"]
        for status in statuses:
            declared = responses.get(str(status))
            assert declared, f"{method.upper()} {path} does not declare {status}"
            ref = declared["content"]["application/json"]["schema"]["$ref"]
            assert ref == error_ref, (method, path, status, ref)
        if 503 in statuses:
            assert "Retry-After" in responses["503"]["headers"], (method, path)
    ready_503 = schema["paths"]["/health/ready"]["get"]["responses"]["503"]
    assert ready_503["content"]["application/json"]["schema"]["$ref"].endswith("HealthResponse")
    assert "text/plain" in schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
