"""Every endpoint against malformed requests, over real HTTP: a clear 4xx, never a 5xx.

tests/service/test_bad_input.py covers the /predict field checks in process; this
module sends the whole matrix (every JSON endpoint x every body defect, GET endpoints
with bodies, odd methods, raw-socket framing errors) to a live ``sentiment-serve``, and
checks afterwards, from the server's own metrics and log, that none was a 5xx and that
the service is still ready and correct.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.reliability import (
    ADMIN_TOKEN,
    LIVE_EXPLAIN_TOKENS,
    LIVE_MAX_BODY,
    LIVE_MAX_CHARS,
    LIVE_MAX_SENTENCES,
    LIVE_MAX_TEXTS,
    Tally,
    assert_no_traceback,
    raw_exchange,
    request_statuses,
    status_of,
)

JSON_CT = {"content-type": "application/json"}
GZIP = {"content-encoding": "gzip"}
AUTH = {"authorization": f"Bearer {ADMIN_TOKEN}"}
GET_PATHS = ("/health/live", "/health/ready", "/model", "/metrics", "/", "/docs")
POST_PATHS = ("/predict", "/tokenize", "/explain", "/admin/model")
ODD_METHODS = ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")
DEEP = 100_000  # nesting depth: far beyond any recursion limit

TALLY = Tally()  # every response of this module (figures for the final test)


@dataclass
class Bad:
    id: str
    body: bytes | None
    status: int
    code: str
    says: tuple[str, ...] = ()  # substrings of the error message
    headers: dict = field(default_factory=lambda: dict(JSON_CT))
    method: str = "POST"
    path: str = "/predict"
    names: str | None = None  # the field the error details must name


def j(value) -> bytes:
    """JSON as Python writes it: ASCII only, so lone surrogates travel as \\ud800 escapes."""
    return json.dumps(value).encode()


def nested(depth: int, inner: bytes = b"") -> bytes:
    return b"[" * depth + inner + b"]" * depth


# -- defects of any JSON body (every POST endpoint) --------------------------------------------
def body_defects(path: str) -> list[Bad]:
    """``F`` is the endpoint's string field; ``ok`` a body the endpoint would accept."""
    f = "path" if path == "/admin/model" else "text"
    ok = j({f: "/no/such/bundle" if f == "path" else "a fine film"})
    extra = AUTH if path == "/admin/model" else {}

    def bad(id_, body, status, code, says=(), headers=None, names=None) -> Bad:
        headers = {**(JSON_CT if headers is None else headers), **extra}
        return Bad(f"{path} {id_}", body, status, code, says, headers, "POST", path, names)

    mt = "unsupported_media_type"
    inv = "invalid_input"
    return [
        bad("text/plain", ok, 415, mt, ("application/json", "text/plain"), {"content-type": "text/plain"}),
        bad("no content type", ok, 415, mt, ("application/json", "nothing"), {}),
        bad("form encoded", b"text=good", 415, mt, ("application/x-www-form-urlencoded",),
            {"content-type": "application/x-www-form-urlencoded"}),
        bad("multipart", b"--x\r\n\r\nhi\r\n--x--", 415, mt, ("multipart/form-data",),
            {"content-type": "multipart/form-data; boundary=x"}),
        bad("xml", b"<text>good</text>", 415, mt, ("application/xml",), {"content-type": "application/xml"}),
        bad("invalid JSON", b'{"' + f.encode() + b'": "unterminated', 422, inv, ("not valid JSON",)),
        bad("empty body", b"", 422, inv, ()),
        bad("trailing data", ok + b" trailing", 422, inv, ("not valid JSON",)),
        bad("single quotes", b"{'" + f.encode() + b"': 'a'}", 422, inv, ("not valid JSON",)),
        bad("invalid UTF-8 in a string", b'{"' + f.encode() + b'": "caf\xe9 \xff"}', 422, inv, ("not UTF-8",)),
        bad("invalid UTF-8 in a key", b'{"\xc3\x28": "a"}', 422, inv, ("not UTF-8",)),
        bad("100k nested arrays", nested(DEEP), 422, inv, ("nested too deeply",)),
        bad("100k nested arrays in the field", b'{"' + f.encode() + b'": ' + nested(DEEP) + b"}",
            422, inv, ("nested too deeply",)),
        bad("100k nested objects", b'{"a": ' * DEEP + b"1" + b"}" * DEEP, 422, inv, ("nested too deeply",)),
        bad("integer of 5001 digits", b'{"' + f.encode() + b'": 1' + b"0" * 5000 + b"}", 422, inv,
            ("too many digits",)),
        bad("1e400", b'{"' + f.encode() + b'": 1e400}', 422, inv, (f, "string"), names=f),
        bad("-1e400", b'{"' + f.encode() + b'": -1e400}', 422, inv, (f, "string"), names=f),
        bad("NaN", b'{"' + f.encode() + b'": NaN}', 422, inv, (f, "string"), names=f),
        bad("array body", b'["a fine film"]', 422, inv, ("must be a JSON object", "not an array")),
        bad("null body", b"null", 422, inv, ("must be a JSON object", "not null")),
        bad("string body", b'"a fine film"', 422, inv, ("must be a JSON object", "not a string")),
        bad("number body", b"12", 422, inv, ("must be a JSON object", "not a number")),
        bad("unknown field", ok[:-1] + b', "lang": "en"}', 422, inv, ("unknown field 'lang'", "expected"), names="lang"),
        bad("key with a lone surrogate", j({"\ud800x": 1}), 422, inv, ("valid string",)),
        bad("60 unknown fields", j({f"k{i}": i for i in range(60)}), 422, inv, ("60 fields", "allowed")),
        bad("body over the limit", j({f: "a" * (LIVE_MAX_BODY + 10)}), 413, "payload_too_large",
            (str(LIVE_MAX_BODY), "SENTIMENT_MAX_BODY_BYTES")),
        bad("a key twice", ok[:-1] + b', "' + f.encode() + b'": "b"}', 422, inv,
            (f"key '{f}' appears twice",)),
        bad("brotli body", ok, 415, mt, ("Content-Encoding 'br'",), {**JSON_CT, "content-encoding": "br"}),
        bad("gzip header on plain JSON", ok, 422, inv, ("not valid gzip",), {**JSON_CT, **GZIP}),
        bad("gzip cut short", gzip.compress(ok)[:-4], 422, inv, ("ends too soon",), {**JSON_CT, **GZIP}),
        bad("gzip then garbage", gzip.compress(ok) + b"GARBAGE", 422, inv, ("not valid gzip",),
            {**JSON_CT, **GZIP}),
        bad("gzip bomb", gzip.compress(b" " * (LIVE_MAX_BODY * 4)), 413, "payload_too_large",
            ("SENTIMENT_MAX_BODY_BYTES",), {**JSON_CT, **GZIP}),
    ]  # fmt: skip


def text_defects(path: str) -> list[Bad]:
    def bad(id_, value, says=(), names=None) -> Bad:
        return Bad(f"{path} {id_}", j(value), 422, "invalid_input", says, path=path, names=names)

    over = "y" * (LIVE_MAX_CHARS + 1)
    return [
        bad("both text and texts", {"text": "a", "texts": ["b"]}, ("exactly one of",)),
        bad("neither", {}, ("exactly one of",)),
        bad("null text", {"text": None}, ("exactly one of",)),
        bad("number as text", {"text": 5}, ("text", "string"), "text"),
        bad("bool as text", {"text": True}, ("text", "string"), "text"),
        bad("list as text", {"text": ["a"]}, ("text", "string"), "text"),
        bad("object as text", {"text": {"a": "b"}}, ("text", "string"), "text"),
        bad("string as texts", {"texts": "a fine film"}, ("texts", "list"), "texts"),
        bad("number in texts", {"texts": ["ok", 3]}, ("texts[1]", "string"), "texts[1]"),
        bad("3000 numbers in texts: one error", {"texts": [1] * 3000}, ("texts[0]",), "texts[0]"),
        bad("list in texts", {"texts": [["a"]]}, ("texts[0]", "string"), "texts[0]"),
        bad("null in texts", {"texts": ["a", None]}, ("texts[1]", "string"), "texts[1]"),
        bad("empty list", {"texts": []}, ("at least one",), "texts"),
        bad("too many texts", {"texts": ["good"] * (LIVE_MAX_TEXTS + 1)},
            (f"{LIVE_MAX_TEXTS + 1} texts", f"limit is {LIVE_MAX_TEXTS}"), "texts"),
        bad("over-long text", {"text": over}, (f"{LIVE_MAX_CHARS + 1} characters",), "text"),
        bad("over-long text in texts", {"texts": ["ok", "ok", over]}, ("texts[2]", f"limit is {LIVE_MAX_CHARS}"), "texts[2]"),
        bad("empty text", {"text": ""}, ("empty or only whitespace",), "text"),
        bad("whitespace text", {"text": " \t\n\r "}, ("empty or only whitespace",), "text"),
        bad("unicode whitespace text", {"text": "\u3000\u00a0\u2009"}, ("empty or only whitespace",), "text"),
        bad("zero-width text", {"text": "\u200b"}, ("only whitespace and invisible",), "text"),
        bad("BOM and word joiner in texts", {"texts": ["ok", "\ufeff \u2060"]},
            ("texts[1]", "invisible"), "texts[1]"),
        bad("empty in texts", {"texts": ["ok", ""]}, ("texts[1]", "empty"), "texts[1]"),
        bad("NUL", {"text": "good\x00film"}, ("control characters",), "text"),
        bad("ESC", {"text": "good\x1b[31mfilm"}, ("control characters",), "text"),
        bad("DEL", {"text": "odd\x7fchar"}, ("control characters",), "text"),
        bad("control character in texts", {"texts": ["ok", "bell\x07"]}, ("texts[1]", "control characters"), "texts[1]"),
        bad("lone high surrogate", {"text": "good \ud800 film"}, ("text", "surrogate"), "text"),
        bad("lone low surrogate in texts", {"texts": ["ok", "\udfff"]}, ("texts[1]", "surrogate"), "texts[1]"),
    ]  # fmt: skip


def sentence_defects() -> list[Bad]:
    """/predict's ``sentences`` field."""

    def bad(id_, value, says=(), names="sentences") -> Bad:
        return Bad(f"/predict {id_}", j(value), 422, "invalid_input", says, names=names)

    many = "Fine. " * (LIVE_MAX_SENTENCES + 1)
    return [
        bad("sentences as a string", {"text": "a", "sentences": "yes"}, ("sentences", "boolean")),
        bad("sentences as a number", {"text": "a", "sentences": 1}, ("sentences", "boolean")),
        bad("sentences null", {"text": "a", "sentences": None}, ("sentences", "boolean")),
        bad("sentences as a list", {"text": "a", "sentences": [True]}, ("sentences", "boolean")),
        bad("sentences with a blank text", {"texts": ["a", " "], "sentences": True},
            ("texts[1]", "empty"), "texts[1]"),
        bad("too many sentences", {"text": many, "sentences": True},
            (f"{LIVE_MAX_SENTENCES + 1} sentences", "SENTIMENT_MAX_SENTENCES_PER_REQUEST")),
        bad("too many sentences over texts", {"texts": [many[:30]] * 4, "sentences": True},
            ("20 sentences", f"limit is {LIVE_MAX_SENTENCES}")),
    ]  # fmt: skip


def explain_defects() -> list[Bad]:
    """/explain takes one ``text`` (and ``model``); its token limit is its own."""

    def bad(id_, value, says=(), names=None, status=422, code="invalid_input") -> Bad:
        return Bad(f"/explain {id_}", j(value), status, code, says, path="/explain", names=names)

    over = "y" * (LIVE_MAX_CHARS + 1)
    return [
        bad("neither", {}, ("text", "required"), "text"),
        bad("texts instead of text", {"texts": ["a"]}, ("'texts'", "expected 'text'"), "texts"),
        bad("both text and texts", {"text": "a", "texts": ["b"]}, ("'texts'", "expected 'text'")),
        bad("null text", {"text": None}, ("text", "string"), "text"),
        bad("number as text", {"text": 5}, ("text", "string"), "text"),
        bad("list as text", {"text": ["a"]}, ("text", "string"), "text"),
        bad("sentences field", {"text": "a", "sentences": True}, ("'sentences'", "expected 'text'")),
        bad("over-long text", {"text": over}, (f"{LIVE_MAX_CHARS + 1} characters",), "text"),
        bad("empty text", {"text": ""}, ("empty or only whitespace",), "text"),
        bad("whitespace text", {"text": "\u3000 \n"}, ("empty or only whitespace",), "text"),
        bad("zero-width text", {"text": " \u200b"}, ("invisible",), "text"),
        bad("NUL", {"text": "good\x00film"}, ("control characters",), "text"),
        bad("lone surrogate", {"text": "good \ud800 film"}, ("surrogate",), "text"),
        bad("over the token limit", {"text": "ok " * (LIVE_EXPLAIN_TOKENS + 1)},
            (f"{LIVE_EXPLAIN_TOKENS + 1} tokens", "SENTIMENT_EXPLAIN_MAX_TOKENS"), "text"),
        bad("over the token limit in punctuation", {"text": "!" * (LIVE_EXPLAIN_TOKENS + 1)},
            (f"at most {LIVE_EXPLAIN_TOKENS}",), "text"),
        bad("unknown model", {"text": "a", "model": "nope"}, ("nope",), "model", 404, "not_found"),
        bad("model as a number", {"text": "a", "model": 3}, ("model", "string"), "model"),
    ]  # fmt: skip


def admin_defects() -> list[Bad]:
    def bad(id_, value, says=(), status=422, code="invalid_input", headers=None, names=None):
        headers = {**JSON_CT, **(AUTH if headers is None else headers)}
        return Bad(
            f"/admin/model {id_}",
            j(value),
            status,
            code,
            says,
            headers,
            path="/admin/model",
            names=names,
        )

    return [
        bad("no token", {"version": "x"}, ("bearer token",), 401, "unauthorized", {}),
        bad("wrong token", {"version": "x"}, ("bearer token",), 401, "unauthorized",
            {"authorization": "Bearer nope"}),
        bad("basic auth", {"version": "x"}, ("bearer token",), 401, "unauthorized",
            {"authorization": f"Basic {ADMIN_TOKEN}"}),
        bad("neither", {}, ("exactly one of",), names="body"),
        bad("model only", {"model": "sentiment-lstm"}, ("exactly one of",), names="body"),
        bad("relative path", {"path": "models/sentiment-lstm/n2"}, ("absolute",), names="path"),
        bad("both", {"version": "x", "path": "/x"}, ("exactly one of",)),
        bad("null version", {"version": None}, ("exactly one of",)),
        bad("number as path", {"path": 5}, ("path", "string")),
        bad("version escapes the root", {"version": "../../etc"}, ("directly under the models root",)),
        bad("version with a slash", {"version": "a/b"}, ("directly under the models root",)),
        bad("version '.'", {"version": "."}, ("directly under the models root",)),
        bad("NUL in version", {"version": "a\x00b"}, ("NUL",)),
        bad("NUL in path", {"path": "/tmp/a\x00b"}, ("NUL",)),
        bad("lone surrogate in path", {"path": "/tmp/\ud800"}, ("surrogate",)),
        bad("5000-character version", {"version": "v" * 5000}, ("keeps serving",)),
        bad("5000-character path", {"path": "/" + "p" * 5000}, ("keeps serving",)),
        bad("path that does not exist", {"path": "/no/such/bundle"}, ("keeps serving", "manifest.json")),
        bad("path to a file", {"path": "/etc/hostname"}, ("keeps serving",)),
        bad("path to a device", {"path": "/dev/zero"}, ("keeps serving",)),
    ]  # fmt: skip


def method_defects() -> list[Bad]:
    cases = []
    for path in (*POST_PATHS, *GET_PATHS):
        for method in ODD_METHODS:
            cases.append(
                Bad(f"{method} {path}", None, 405, "method_not_allowed", (), {}, method, path)
            )
    for path in POST_PATHS:
        cases.append(Bad(f"GET {path}", None, 405, "method_not_allowed", (), {}, "GET", path))
    for path in GET_PATHS:
        cases.append(
            Bad(
                f"POST {path}",
                j({"text": "x"}),
                405,
                "method_not_allowed",
                (),
                method="POST",
                path=path,
            )
        )
        cases.append(
            Bad(
                f"GET {path} with a body over the limit",
                b"x" * (LIVE_MAX_BODY + 1),
                413,
                "payload_too_large",
                ("SENTIMENT_MAX_BODY_BYTES",),
                method="GET",
                path=path,
            )
        )
    for path in (
        "/v1/predict",  # (not /v2/...: the inference protocol, with its own error shape)
        "/admin",
        "/admin/model/extra",
        "/predict/x",
        "/%00",
        "/" + "a" * 4000,
    ):
        cases.append(Bad(f"GET {path[:40]}", None, 404, "not_found", (), {}, "GET", path))
    return cases  # fmt: skip


CASES = [
    *(c for p in POST_PATHS for c in body_defects(p)),
    *(c for p in ("/predict", "/tokenize") for c in text_defects(p)),
    *sentence_defects(),
    *explain_defects(),
    *admin_defects(),
    *method_defects(),
]


@pytest.fixture(scope="module")
def client(live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.base, timeout=30) as c:
        yield c


def check_error(
    case_id: str, response: httpx.Response, status: int, code: str, says=(), names=None
):
    TALLY.record(response.status_code, response.content, case_id)
    assert response.status_code == status, (case_id, response.text[:500])
    if response.request.method == "HEAD":
        return
    assert response.headers["content-type"].startswith("application/json"), case_id
    body = response.json()
    assert body["error"]["code"] == code, (case_id, body)
    assert body["request_id"] == response.headers["x-request-id"], case_id
    message = body["error"]["message"]
    assert message.strip(), case_id
    for part in says:
        assert part in message, (case_id, message)
    if names is not None:
        assert names in [d["field"] for d in body["error"]["details"]], (case_id, body)
    assert len(body["error"]["details"]) <= 10, (case_id, "error details are capped")
    if status == 405:
        assert response.headers.get("allow"), (case_id, "405 without an Allow header")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_request_gets_a_clear_4xx(client, case: Bad):
    response = client.request(case.method, case.path, content=case.body, headers=case.headers)
    check_error(case.id, response, case.status, case.code, case.says, case.names)


@pytest.mark.parametrize("path", GET_PATHS)
def test_get_endpoints_ignore_a_small_body(client, path):
    """A body on a GET has no meaning: it is not parsed (not even invalid UTF-8) and the
    answer is the ordinary one."""
    for body, ctype in ((b'{"text": [[[', "application/json"), (b"\xff\xfe\x00", "text/plain")):
        response = client.request("GET", path, content=body, headers={"content-type": ctype})
        TALLY.record(response.status_code, response.content, f"GET {path} with a body")
        assert response.status_code == 200, response.text[:300]


# -- framing errors and bodies that are never sent, over a raw socket ----------------------------
RAW_HEAD = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%s\r\n"


@pytest.mark.parametrize("path", [*POST_PATHS, "/health/live"])
def test_declared_huge_body_gets_413_at_once_without_being_sent(live, path):
    """Headers announce 50 MB, a few bytes follow, the rest never comes: the 413 must come
    from the headers alone, promptly, and close the connection (it was not read)."""
    method = b"GET" if path.startswith("/health") else b"POST"
    auth = f"Authorization: Bearer {ADMIN_TOKEN}\r\n".encode()
    request = RAW_HEAD % (method, path.encode(), auth + b"Content-Length: 50000000\r\n") + b'{"te'
    reply, first_byte_s = raw_exchange(live.port, request, timeout_s=10)
    TALLY.record(status_of(reply), reply, f"raw 50 MB {path}")
    assert status_of(reply) == 413, reply[:300]
    assert b"payload_too_large" in reply and b"SENTIMENT_MAX_BODY_BYTES" in reply
    assert b"connection: close" in reply.lower()
    assert first_byte_s < 2.0, f"413 took {first_byte_s:.2f} s: the server waited for the body"


def test_chunked_body_over_the_limit_gets_413(live):
    chunk = b"a" * 16384
    body = b"".join(
        b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(LIVE_MAX_BODY // 16384 + 2)
    )
    request = (
        RAW_HEAD % (b"POST", b"/predict", b"Transfer-Encoding: chunked\r\n") + body + b"0\r\n\r\n"
    )
    reply, _ = raw_exchange(live.port, request)
    TALLY.record(status_of(reply), reply, "chunked over the limit")
    assert status_of(reply) == 413, reply[:300]
    assert b"payload_too_large" in reply


FRAMING = {
    "non-numeric Content-Length": RAW_HEAD % (b"POST", b"/predict", b"Content-Length: abc\r\n") + b"{}",
    "negative Content-Length": RAW_HEAD % (b"POST", b"/predict", b"Content-Length: -5\r\n") + b"{}",
    "Content-Length beyond 64 bits": RAW_HEAD % (b"POST", b"/tokenize", b"Content-Length: 99999999999999999999999\r\n"),
    "two Content-Lengths": RAW_HEAD % (b"POST", b"/predict", b"Content-Length: 2\r\nContent-Length: 3\r\n") + b"{}",
    "Content-Length and chunked": RAW_HEAD % (b"POST", b"/predict", b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n") + b"2\r\n{}\r\n0\r\n\r\n",
    "invalid chunk size": RAW_HEAD % (b"POST", b"/predict", b"Transfer-Encoding: chunked\r\n") + b"zz\r\nabc\r\n0\r\n\r\n",
    "not HTTP at all (TLS hello)": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
    "bad method token": b"G(T /health/live HTTP/1.1\r\nHost: x\r\n\r\n",
    "unknown method": b"BREW /predict HTTP/1.1\r\nHost: x\r\n\r\n",
    "non-ASCII path": "GET /héalth HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
}  # fmt: skip


@pytest.mark.parametrize("request_bytes", FRAMING.values(), ids=FRAMING.keys())
def test_broken_http_framing_gets_400(live, request_bytes):
    """Refused by the HTTP parser before the app sees it, in the service's error shape."""
    reply, _ = raw_exchange(live.port, request_bytes)
    TALLY.record(status_of(reply), reply, "framing")
    assert status_of(reply) == 400, reply[:300]
    assert b'"code": "bad_request"' in reply and b"malformed HTTP request: " in reply


def test_a_100_kb_url_gets_431(live):
    """Over the 64 KiB head limit, though its head comes whole in one read (uvicorn's
    parser answered it with its plain 400)."""
    reply, _ = raw_exchange(live.port, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    TALLY.record(status_of(reply), reply, "framing")
    assert status_of(reply) == 431, reply[:300]
    assert b"header_too_large" in reply


# -- afterwards --------------------------------------------------------------------------------
def test_after_the_matrix_no_5xx_and_the_service_is_ready_and_correct(live, client, bundle):
    """Last in this module: the server's own counts, its log, and a real prediction."""
    server_side = request_statuses(client.get("/metrics").text)
    assert not any(s >= 500 for s in server_side), f"server counted 5xx: {server_side}"
    assert TALLY.server_errors == 0, TALLY.summary()
    ready = client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    text = "A moving story and brilliant acting."
    response = client.post("/predict", json={"text": text})
    assert response.status_code == 200, response.text
    expected = float(bundle.score_texts([text])[0])
    assert response.json()["predictions"][0]["score"] == pytest.approx(expected, abs=1e-5)
    log = live.output()
    assert "unhandled error" not in log and '"level": "error"' not in log, log[-3000:]
    assert_no_traceback(response.content, "final predict")
    print(
        f"\n[bad-input matrix] {TALLY.total} malformed requests: {TALLY.server_errors} 5xx "
        f"(client statuses {TALLY.summary()}; server-side statuses {dict(sorted(server_side.items()))})"
    )
