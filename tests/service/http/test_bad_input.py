"""Bad requests get a precise 4xx (never a 500), and the service stays ready.

Also the failure statuses of inference itself: overloaded (503 + Retry-After), timeout
(504) and a failed batch (500 inference_failed).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from service.http.app import create_app
from tests.support.servers import make_settings, serve, wait_until

MAX_TEXTS = 3
MAX_CHARS = 50
MAX_BODY = 2048
JSON = {"content-type": "application/json"}


@dataclass
class Case:
    id: str
    request: dict
    status: int
    code: str
    says: tuple[str, ...] = ()  # substrings of the error message
    names: str | None = None  # the field named in the error details
    method: str = "POST"
    path: str = "/predict"


CASES = [
    Case("empty text", {"json": {"text": ""}}, 422, "invalid_input", ("text", "empty"), "text"),
    Case(
        "whitespace text",
        {"json": {"text": " \n\t "}},
        422,
        "invalid_input",
        ("text", "whitespace"),
        "text",
    ),
    Case(
        "whitespace in texts",
        {"json": {"texts": ["fine film", "   "]}},
        422,
        "invalid_input",
        ("texts[1]", "empty or only whitespace"),
        "texts[1]",
    ),
    Case(
        "number in texts",
        {"json": {"texts": [1]}},
        422,
        "invalid_input",
        ("texts[0]", "string"),
        "texts[0]",
    ),
    Case("number as text", {"json": {"text": 5}}, 422, "invalid_input", ("text", "string"), "text"),
    Case(
        "list as text",
        {"json": {"text": ["a"]}},
        422,
        "invalid_input",
        ("text", "string"),
        "text",
    ),
    Case(
        "both text and texts",
        {"json": {"text": "a", "texts": ["b"]}},
        422,
        "invalid_input",
        ("exactly one of 'text'", "'texts'"),
    ),
    Case("neither", {"json": {}}, 422, "invalid_input", ("exactly one of 'text'",)),
    Case("null text", {"json": {"text": None}}, 422, "invalid_input", ("exactly one of",)),
    Case(
        "empty list",
        {"json": {"texts": []}},
        422,
        "invalid_input",
        ("'texts'", "at least one"),
        "texts",
    ),
    Case(
        "too many texts",
        {"json": {"texts": ["good"] * (MAX_TEXTS + 1)}},
        422,
        "invalid_input",
        (f"{MAX_TEXTS + 1} texts", f"limit is {MAX_TEXTS}"),
        "texts",
    ),
    Case(
        "over-long text",
        {"json": {"text": "x" * (MAX_CHARS + 1)}},
        422,
        "invalid_input",
        (f"{MAX_CHARS + 1} characters", f"limit is {MAX_CHARS}"),
        "text",
    ),
    Case(
        "over-long text in texts",
        {"json": {"texts": ["ok", "y" * (MAX_CHARS + 1)]}},
        422,
        "invalid_input",
        ("texts[1]", f"limit is {MAX_CHARS}"),
        "texts[1]",
    ),
    Case(
        "NUL character",
        {"json": {"text": "good\x00film"}},
        422,
        "invalid_input",
        ("text", "control characters"),
        "text",
    ),
    Case(
        "control character in texts",
        {"json": {"texts": ["ok", "bell\x07", "ok"]}},
        422,
        "invalid_input",
        ("texts[1]", "control characters"),
        "texts[1]",
    ),
    Case(
        "DEL character",
        {"json": {"text": "odd\x7fchar"}},
        422,
        "invalid_input",
        ("control characters",),
        "text",
    ),
    Case(
        "invalid JSON",
        {"content": b'{"text": "unterminated', "headers": JSON},
        422,
        "invalid_input",
        ("not valid JSON",),
    ),
    Case(
        "empty body",
        {"content": b"", "headers": JSON},
        422,
        "invalid_input",
        (),
    ),
    Case(
        "JSON array body",
        {"json": ["good film"]},
        422,
        "invalid_input",
        ("object",),
    ),
    Case(
        "text/plain",
        {"content": b'{"text": "good"}', "headers": {"content-type": "text/plain"}},
        415,
        "unsupported_media_type",
        ("application/json", "text/plain"),
    ),
    Case(
        "form encoded",
        {"data": {"text": "good"}},
        415,
        "unsupported_media_type",
        ("application/json",),
    ),
    Case(
        "no content type",
        {"content": b'{"text": "good"}'},
        415,
        "unsupported_media_type",
        ("application/json",),
    ),
    Case(
        "unknown extra field",
        {"json": {"text": "good", "lang": "en"}},
        422,
        "invalid_input",
        ("unknown field 'lang'", "expected 'text'", "'texts'", "'model'"),
        "lang",
    ),
    Case(
        "body over the limit",
        {"content": b'{"text": "' + b"a" * (MAX_BODY + 10) + b'"}', "headers": JSON},
        413,
        "payload_too_large",
        (str(MAX_BODY), "SENTIMENT_MAX_BODY_BYTES"),
    ),
    Case(
        "tokenize: empty text",
        {"json": {"texts": ["x", ""]}},
        422,
        "invalid_input",
        ("texts[1]", "empty"),
        "texts[1]",
        path="/tokenize",
    ),
    Case(
        "tokenize: wrong type",
        {"json": {"text": 5}},
        422,
        "invalid_input",
        ("text",),
        "text",
        path="/tokenize",
    ),
    Case(
        "tokenize: text/plain",
        {"content": b"hello", "headers": {"content-type": "text/plain"}},
        415,
        "unsupported_media_type",
        (),
        path="/tokenize",
    ),
    Case(
        "unknown route", {}, 404, "not_found", ("no route GET /nope",), method="GET", path="/nope"
    ),
    Case(
        "unknown route POST",
        {"json": {"text": "good"}},
        404,
        "not_found",
        (),
        path="/v1/predict",  # (/v2/... is the inference protocol, its own error shape)
    ),
    Case("GET /predict", {}, 405, "method_not_allowed", ("method GET", "use POST"), method="GET"),
    Case(
        "POST /health/live",
        {},
        405,
        "method_not_allowed",
        ("method POST not allowed on /health/live; use GET",),
        path="/health/live",
    ),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def limited():
    settings = make_settings(
        max_texts_per_request=MAX_TEXTS, max_text_chars=MAX_CHARS, max_body_bytes=MAX_BODY
    )
    async with serve(settings) as (app, client):
        yield app, client


async def send(client, case: Case):
    return await client.request(case.method, case.path, **case.request)


def check(case: Case, response) -> None:
    assert response.status_code == case.status, (case.id, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == case.code, body
    assert body["request_id"] == response.headers["x-request-id"]
    message = body["error"]["message"]
    for part in case.says:
        assert part in message, (case.id, message)
    if case.names is not None:
        assert case.names in [d["field"] for d in body["error"]["details"]], body


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_request(limited, case: Case):
    _, client = limited
    check(case, await send(client, case))


@pytest.mark.asyncio(loop_scope="module")
async def test_method_not_allowed_lists_allowed_methods(limited):
    _, client = limited
    response = await client.get("/predict")
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]
    message = response.json()["error"]["message"]  # the same methods, in words
    assert message == f"method GET not allowed on /predict; use {response.headers['allow']}"


@pytest.mark.asyncio(loop_scope="module")
async def test_declared_oversized_body_is_refused_unread(limited):
    _, client = limited
    big = b'{"text": "' + b"a" * (MAX_BODY * 4) + b'"}'
    response = await client.post("/predict", content=big, headers=JSON)
    assert response.status_code == 413
    assert response.headers.get("connection") == "close"


@pytest.mark.asyncio(loop_scope="module")
async def test_chunked_oversized_body_is_refused(limited):
    """No Content-Length: the limit is enforced while the body streams in."""
    _, client = limited

    async def chunks():
        for _ in range(4):
            yield b"a" * (MAX_BODY // 2)

    response = await client.post("/predict", content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.asyncio(loop_scope="module")
async def test_limits_still_allow_good_requests(limited):
    _, client = limited
    response = await client.post("/predict", json={"texts": ["good", "bad", "x" * MAX_CHARS]})
    assert response.status_code == 200, response.text
    response = await client.post(
        "/predict", content=b'{"text": "fine"}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    response = await client.post(
        "/predict",
        content=b'{"text": "tab\\tand\\nnewline are fine"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200, response.text


@pytest.mark.asyncio(loop_scope="module")
async def test_no_bad_input_is_a_500_and_the_service_stays_ready(limited):
    _, client = limited
    for case in CASES:
        response = await send(client, case)
        assert response.status_code < 500, (case.id, response.text)
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    response = await client.post("/predict", json={"text": "a fine film"})
    assert response.status_code == 200, response.text
    families = {
        f.name: f for f in text_string_to_metric_families((await client.get("/metrics")).text)
    }
    statuses = {s.labels["status"] for s in families["sentiment_requests"].samples if s.value > 0}
    assert not any(s.startswith("5") for s in statuses), statuses


# -- inference failures (these need their own apps and a gate on inference) ---------------
async def test_overloaded_is_503_with_retry_after(predict_gate):
    settings = make_settings(
        queue_size=1, max_texts_per_request=1, inference_workers=1, max_batch_size=1
    )
    async with serve(settings) as (app, client):
        batcher = app.state.models.current().batcher
        predict_gate.close()
        in_flight = asyncio.create_task(client.post("/predict", json={"text": "first"}))
        try:
            await asyncio.to_thread(predict_gate.entered.wait, 10)
            assert predict_gate.entered.is_set()
            queued = asyncio.create_task(client.post("/predict", json={"text": "second"}))
            await wait_until(lambda: batcher.queue_depth == 1)

            refused = await client.post("/predict", json={"text": "third"})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "overloaded"
            assert "queued" in refused.json()["error"]["message"]
            assert int(refused.headers["retry-after"]) >= 1
            metrics = (await client.get("/metrics")).text
            assert (
                'sentiment_rejected_total{model="sentiment-lstm",reason="overloaded"} 1.0'
                in metrics
            )
            # Tokenizing is CPU work too: refused the same way, before any encoding.
            refused = await client.post("/tokenize", json={"text": "third"})
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "overloaded"
            assert int(refused.headers["retry-after"]) >= 1
        finally:
            predict_gate.open()
        first, second = await asyncio.wait_for(asyncio.gather(in_flight, queued), 30)
        assert first.status_code == second.status_code == 200
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.post("/predict", json={"text": "fourth"})).status_code == 200
        assert (await client.post("/tokenize", json={"text": "fourth"})).status_code == 200
        assert batcher.admitted == 0  # the refused and the answered /tokenize gave room back


async def test_request_timeout_is_504(predict_gate):
    async with serve(make_settings(request_timeout_s=0.05)) as (_, client):
        predict_gate.close()
        try:
            response = await client.post("/predict", json={"text": "will not make it"})
        finally:
            predict_gate.open()
        assert response.status_code == 504, response.text
        body = response.json()
        assert body["error"]["code"] == "timeout"
        assert "SENTIMENT_REQUEST_TIMEOUT_S" in body["error"]["message"]
        assert (await client.get("/health/ready")).status_code == 200


async def test_failed_batch_is_500_and_the_service_stays_ready(predict_gate):
    async with serve(make_settings()) as (_, client):
        predict_gate.fail()
        response = await client.post("/predict", json={"texts": ["good", "bad"]})
        assert response.status_code == 500, response.text
        body = response.json()
        assert body["error"]["code"] == "inference_failed"
        assert "retry" in body["error"]["message"]
        assert "injected" not in response.text  # no internals leak to the client
        assert "Traceback" not in response.text
        assert (await client.get("/health/ready")).status_code == 200
        predict_gate.fail(False)
        response = await client.post("/predict", json={"texts": ["good", "bad"]})
        assert response.status_code == 200, response.text


async def test_after_shutdown_requests_get_503(bundle_dir):
    settings = make_settings()
    async with serve(settings) as (app, client):
        await app.state.models.shutdown()  # what the lifespan does on SIGTERM
        response = await client.post("/predict", json={"text": "too late"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "shutting_down"
        assert response.headers["retry-after"] == "1"
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "shutting down"
        assert (await client.get("/health/live")).status_code == 200


async def test_unexpected_error_is_a_clean_500_with_the_request_id():
    app = create_app(make_settings(), configure_logs=False)

    @app.get("/boom")
    async def boom():
        raise RuntimeError("secret internals")

    async with app.router.lifespan_context(app):
        # Starlette re-raises after answering; the client must still get the answer.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/boom", headers={"X-Request-ID": "boom-1"})
            assert response.status_code == 500
            body = response.json()
            assert body["error"]["code"] == "internal_error"
            assert "secret internals" not in response.text
            assert body["request_id"] == "boom-1"
            assert response.headers["x-request-id"] == "boom-1"
            assert (await client.get("/health/ready")).status_code == 200
