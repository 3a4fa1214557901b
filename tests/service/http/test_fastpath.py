"""service/fastpath.py: /predict outside FastAPI's routing answers exactly as the route does.

The same requests go to an app with the fast path and one without it (every request then
takes the FastAPI route); status, headers that matter and body must be identical, apart
from the request id. The requests cover the fast path's own answers (success, texts
lists, limits) and every case it hands to the route (bad JSON, wrong types, wrong
Content-Type, other methods).
"""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.http.json_body import duplicate_key, may_repeat_a_key
from tests.support.servers import NEGATIVE_TEXT, POSITIVE_TEXT, make_settings, serve

JSON_TYPE = "application/json"
JSON = {"content-type": JSON_TYPE}

CASES = [
    ("one text", JSON, json.dumps({"text": POSITIVE_TEXT})),
    ("several texts", JSON, json.dumps({"texts": [NEGATIVE_TEXT, "ok", POSITIVE_TEXT * 40]})),
    ("non-ASCII text", JSON, json.dumps({"text": "Ｆｉｌｍ génial, j’ai adoré ❤"})),
    ("json with charset", {"content-type": "application/json; charset=utf-8"}, '{"text": "fine"}'),
    (
        "sentences",
        JSON,
        json.dumps({"texts": [f"{POSITIVE_TEXT} {NEGATIVE_TEXT}", "ok"], "sentences": True}),
    ),
    ("sentences false", JSON, json.dumps({"text": POSITIVE_TEXT, "sentences": False})),
    ("sentences not a boolean", JSON, '{"text": "fine", "sentences": "yes"}'),
    ("sentences with a blank text", JSON, '{"texts": ["fine", " "], "sentences": true}'),
    ("empty text", JSON, '{"text": "   "}'),
    ("too many texts", JSON, json.dumps({"texts": ["a"] * 300})),
    ("both fields", JSON, '{"text": "a", "texts": ["b"]}'),
    ("neither field", JSON, "{}"),
    ("wrong type", JSON, '{"text": 5}'),
    ("unknown key", JSON, '{"text": "a", "extra": 1}'),
    ("not json", JSON, "{text: a}"),
    ("a key twice", JSON, '{"texts": ["a"], "texts": ["b", "c"]}'),
    ("a key twice, once escaped", JSON, '{"text": "a", "te\\u0078t": "b"}'),
    ("brotli encoding", {**JSON, "content-encoding": "br"}, '{"text": "a"}'),
    ("lone surrogate", JSON, '{"text": "a\\ud800b"}'),
    ("control character", JSON, '{"text": "a\\u0000b"}'),
    ("NaN", JSON, '{"text": NaN}'),
    ("text/plain", {"content-type": "text/plain"}, '{"text": "a"}'),
    ("no content type", {}, '{"text": "a"}'),
    ("vendor +json", {"content-type": "application/vnd.example+json"}, '{"text": "fine"}'),
    ("text/plain+json", {"content-type": "text/plain+json"}, '{"text": "fine"}'),
    (
        "two content types",
        [("content-type", "text/plain"), ("content-type", JSON_TYPE)],
        '{"text": "a"}',
    ),
    (
        "json first of two",
        [("content-type", JSON_TYPE), ("content-type", "text/plain")],
        '{"text": "a"}',
    ),
]


@pytest.fixture
async def both_apps():
    async with (
        serve(make_settings(fast_path=True)) as (fast_app, fast),
        serve(make_settings(fast_path=False)) as (_, routed),
    ):
        yield fast_app, fast, routed


def comparable(response) -> tuple:
    body = response.json()
    if isinstance(body, dict):
        body.pop("request_id", None)
    headers = {k: response.headers.get(k) for k in ("content-type", "retry-after")}
    return response.status_code, headers, body


@pytest.mark.parametrize(("name", "headers", "content"), CASES, ids=[c[0] for c in CASES])
async def test_fast_path_answers_exactly_like_the_route(both_apps, name, headers, content):
    _, fast, routed = both_apps
    got = await fast.post("/predict", content=content.encode(), headers=headers)
    want = await routed.post("/predict", content=content.encode(), headers=headers)
    assert comparable(got) == comparable(want)
    assert got.headers["x-request-id"]  # the request context still applies


@pytest.mark.parametrize("path", ["/predict", "/tokenize", "/explain"])
async def test_a_gzip_body_gets_the_plain_body_answer(both_apps, path):
    """gzip or deflate on every JSON route, as on /v2 (the fast path hands them over)."""
    _, fast, routed = both_apps
    raw = json.dumps({"text": f"{POSITIVE_TEXT} {NEGATIVE_TEXT}"}).encode()
    want = comparable(await routed.post(path, content=raw, headers=JSON))
    assert want[0] == 200
    for client in (fast, routed):
        for encoding, body in (("gzip", gzip.compress(raw)), ("deflate", zlib.compress(raw))):
            headers = {**JSON, "content-encoding": encoding}
            got = await client.post(path, content=body, headers=headers)
            assert comparable(got) == want, (encoding, got.text)


async def test_fast_path_serves_well_formed_requests(both_apps, monkeypatch):
    """It really answers them itself (the FastAPI endpoint is not called)."""
    _, fast, _ = both_apps
    calls = []
    import service.pipeline as pipeline

    original = pipeline.predict_json
    monkeypatch.setattr(pipeline, "predict_json", lambda *a: calls.append(1) or original(*a))
    response = await fast.post("/predict", json={"text": POSITIVE_TEXT})
    assert response.status_code == 200
    assert calls == []  # the route would have called the patched function
    metrics = (await fast.get("/metrics")).text
    assert (
        'sentiment_requests_total{model="sentiment-lstm",route="/predict",status="200"}' in metrics
    )
    assert 'sentiment_texts_total{model="sentiment-lstm",route="/predict"}' in metrics


async def test_fast_path_hands_sentences_to_the_route(both_apps, monkeypatch):
    """Requests asking for sentences are not the hot path: the route answers them."""
    _, fast, _ = both_apps
    calls = []
    from service.explain import by_sentence

    original = by_sentence.predict_json
    monkeypatch.setattr(by_sentence, "predict_json", lambda *a: calls.append(1) or original(*a))
    response = await fast.post("/predict", json={"text": POSITIVE_TEXT, "sentences": True})
    assert response.status_code == 200 and calls == [1]
    assert response.json()["predictions"][0]["sentences"]


async def test_fast_path_errors_use_the_one_error_body(both_apps):
    """An error after validation (here: not ready) keeps the service's error shape."""
    fast_app, fast, _ = both_apps
    manager = fast_app.state.models.manager()
    active, manager.active = manager.active, None
    try:
        response = await fast.post("/predict", json={"text": "fine"})
    finally:
        manager.active = active
    assert response.status_code == 503
    assert response.headers["retry-after"]
    body = response.json()
    assert body["error"]["code"] == "not_ready"
    assert body["request_id"] == response.headers["x-request-id"]


# -- framing and disconnects, at the ASGI level (no HTTP client sends these) -------------
async def asgi_call(app, headers: list[tuple[bytes, bytes]], chunks: list[bytes], disconnect=False):
    """One POST /predict straight into the ASGI app; returns (status, body bytes)."""
    messages = [
        {"type": "http.request", "body": c, "more_body": k < len(chunks) - 1 or disconnect}
        for k, c in enumerate(chunks)
    ]
    if disconnect:
        messages.append({"type": "http.disconnect"})
    sent: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
    }
    await app(scope, receive, send)
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return (start["status"] if start else None), body


def metric_statuses(app) -> str:
    return app.state.metrics.render().decode()


@pytest.mark.parametrize("fast_path", [True, False])
async def test_chunked_body_declared_small_is_still_capped(fast_path):
    """Content-Length and Transfer-Encoding: chunked (h11 frames it as chunked): counted."""
    async with serve(make_settings(fast_path=fast_path, max_body_bytes=4096)) as (app, _):
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"20"),
            (b"transfer-encoding", b"chunked"),
        ]
        chunks = [b'{"text": "', b"a" * 3000, b"a" * 3000, b'"}']
        status, body = await asgi_call(app, headers, chunks)
    assert status == 413, body


async def test_client_leaving_mid_body_is_answered_like_the_route():
    results = {}
    for fast_path in (True, False):
        async with serve(make_settings(fast_path=fast_path)) as (app, _):
            headers = [(b"content-type", b"application/json"), (b"content-length", b"100")]
            status, _ = await asgi_call(app, headers, [b'{"text": "par'], disconnect=True)
            text = metric_statuses(app)
            results[fast_path] = (status, 'status="500"' in text)
    assert results[True] == results[False]
    assert results[True][1] is False  # never counted as a server error


# -- the quick test before the duplicate-key parse ---------------------------------------------
KEYS = ("text", "texts", "model", "sentences")


def _escaped(name: str, how: list[bool]) -> str:
    return "".join(f"\\u{ord(c):04x}" if e else c for c, e in zip(name, how, strict=False))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(KEYS), st.lists(st.booleans(), min_size=9, max_size=9), st.text()
        ),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
)
def test_the_quick_test_never_misses_a_key_given_twice(pairs, ascii_only):
    """``may_repeat_a_key`` may say yes to a body without one (then the parse decides), but
    never no to a body with one: keys written plainly or escaped, any text as values."""
    members = [
        f'"{_escaped(name, how)}": {json.dumps(value, ensure_ascii=ascii_only)}'
        for name, how, value in pairs
    ]
    body = ("{" + ", ".join(members) + "}").encode()
    quoted = tuple(f'"{k}"'.encode() for k in KEYS)
    if duplicate_key(body) is not None:
        assert may_repeat_a_key(body, quoted)
    if len({name for name, _, _ in pairs}) == len(pairs) and not any(
        any(how[: len(name)]) for name, how, _ in pairs
    ):
        assert duplicate_key(body) is None  # and plain distinct keys are never a false alarm
