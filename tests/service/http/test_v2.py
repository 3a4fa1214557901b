"""The Open Inference Protocol (v2) routes over plain HTTP, against the real bundle:
shapes, the binary tensor extension, classification, the same numbers as /predict, and
every bad input answered with a 4xx in the protocol's ``{"error": "..."}`` shape.

(The unmodified tritonclient against a live server: test_v2_tritonclient.py.)
"""

from __future__ import annotations

import asyncio
import gzip
import json
import struct
import zlib

import numpy as np
import pytest
import pytest_asyncio

from tests.support.servers import (
    BINARY_MODEL,
    NEGATIVE_TEXT,
    POSITIVE_TEXT,
    make_settings,
    serve,
    wait_until,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

INFER = f"/v2/models/{BINARY_MODEL}/infer"
TEXTS = [
    POSITIVE_TEXT,
    NEGATIVE_TEXT,
    "It was fine, I guess. Nothing special; the popcorn was good.",
    "Ünïcödé café — “quotes” and emoji 🎬 are text too",
    "zzxqv blorptastic wuggle",
]
MAX_TEXTS, MAX_CHARS, MAX_BODY = 8, 300, 64 * 1024


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client():
    settings = make_settings(
        max_texts_per_request=MAX_TEXTS, max_text_chars=MAX_CHARS, max_body_bytes=MAX_BODY
    )
    async with serve(settings) as (_, client):
        yield client


def json_request(texts, **extra) -> bytes:
    tensor = {"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}
    return json.dumps({"inputs": [tensor], **extra}).encode()


def binary_request(texts, outputs=None, **extra) -> tuple[bytes, dict]:
    blob = b"".join(struct.pack("<I", len(b)) + b for b in (t.encode() for t in texts))
    tensor = {
        "name": "text",
        "shape": [len(texts)],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": len(blob)},
    }
    head = json.dumps({"inputs": [tensor], "outputs": outputs, **extra}).encode()
    return head + blob, {"Inference-Header-Content-Length": str(len(head))}


def split_binary(response) -> tuple[dict, dict[str, bytes]]:
    """The JSON header and each binary output's bytes, by name (in outputs order)."""
    n = int(response.headers["inference-header-content-length"])
    head = json.loads(response.content[:n])
    blobs, pos = {}, n
    for output in head["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is not None:
            blobs[output["name"]] = response.content[pos : pos + size]
            pos += size
    assert pos == len(response.content)
    return head, blobs


def unpack_bytes(blob: bytes) -> list[str]:
    out, pos = [], 0
    while pos < len(blob):
        (n,) = struct.unpack_from("<I", blob, pos)
        out.append(blob[pos + 4 : pos + 4 + n].decode())
        pos += 4 + n
    return out


async def predict_probabilities(client, texts) -> tuple[np.ndarray, list[str], dict]:
    response = await client.post("/predict", json={"texts": texts})
    assert response.status_code == 200, response.text
    data = response.json()
    labels = list(data["predictions"][0]["probabilities"])
    probs = np.array([[p["probabilities"][k] for k in labels] for p in data["predictions"]])
    return probs, [p["label"] for p in data["predictions"]], data["model"]


async def bad(client, body: bytes, status: int = 400, headers=None, path=INFER) -> str:
    response = await client.post(path, content=body, headers=headers or {})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert list(data) == ["error"] and isinstance(data["error"], str), data
    return data["error"]


# -- health and metadata -----------------------------------------------------------------------
async def test_health_bodies_as_the_kserve_client_expects(client):
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    assert (await client.get("/v2/health/ready")).json() == {"ready": True}
    ready = await client.get(f"/v2/models/{BINARY_MODEL}/ready")
    assert ready.json() == {"name": BINARY_MODEL, "ready": True}


async def test_openapi_document_has_only_component_references(client):
    """No ``#/$defs/...`` left from a pydantic schema: ReDoc refuses the whole page on one."""
    document = (await client.get("/openapi.json")).text
    assert "$defs" not in document
    assert '"/v2/models/{name}/infer"' in document


async def test_openapi_lists_the_statuses_v2_really_answers(client):
    """400 for bad input, never FastAPI's 422 (its path parameters are any string)."""
    paths = (await client.get("/openapi.json")).json()["paths"]
    v2 = {p: ops for p, ops in paths.items() if p.startswith("/v2")}
    assert len(v2) == 9
    for path, operations in v2.items():
        for operation in operations.values():
            assert "422" not in operation["responses"], path
    assert "Retry-After" in paths["/health/ready"]["get"]["responses"]["503"]["headers"]
    assert {"400", "404", "413", "503", "504"} <= set(
        paths[INFER.replace(BINARY_MODEL, "{name}")]["post"]["responses"]
    )


async def test_server_and_model_metadata(client, manifest):
    server = (await client.get("/v2")).json()
    assert set(server) == {"name", "version", "extensions"}
    assert {"binary_tensor_data", "classification"} <= set(server["extensions"])
    meta = (await client.get(f"/v2/models/{BINARY_MODEL}")).json()
    assert meta["name"] == BINARY_MODEL and meta["versions"] == [manifest["version"]]
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(manifest["labels"])]},
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
    ]
    assert meta["parameters"]["labels"] == manifest["labels"]
    by_version = await client.get(f"/v2/models/{BINARY_MODEL}/versions/{manifest['version']}")
    assert by_version.json() == meta


async def test_unknown_model_or_version_is_404(client, manifest):
    for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/nope/infer"):
        response = await client.request("POST" if path.endswith("infer") else "GET", path)
        assert response.status_code == 404, response.text
        assert "nope" in response.json()["error"] and BINARY_MODEL in response.json()["error"]
    message = await bad(
        client,
        json_request(["fine"]),
        404,
        path=f"/v2/models/{BINARY_MODEL}/versions/old/infer",
    )
    assert "'old'" in message and manifest["version"] in message
    unknown = (await client.get("/v2/no/such/route")).json()
    assert list(unknown) == ["error"] and "/v2/no/such/route" in unknown["error"]


# -- inference: the same numbers as /predict ---------------------------------------------------
async def test_json_inference_equals_predict(client, manifest):
    response = await client.post(INFER, content=json_request(TEXTS, id="req-7"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in response.headers
    data = response.json()
    assert data["model_name"] == BINARY_MODEL and data["model_version"] == manifest["version"]
    assert data["id"] == "req-7"
    probs, labels = data["outputs"]
    assert (probs["name"], probs["datatype"], probs["shape"]) == (
        "probabilities",
        "FP32",
        [len(TEXTS), len(manifest["labels"])],
    )
    assert (labels["name"], labels["datatype"], labels["shape"]) == ("label", "BYTES", [len(TEXTS)])
    want, want_labels, _ = await predict_probabilities(client, TEXTS)
    got = np.array(probs["data"]).reshape(probs["shape"])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert labels["data"] == want_labels
    assert want_labels[:2] == ["positive", "negative"]


async def test_binary_inference_equals_predict(client, manifest):
    body, headers = binary_request(TEXTS, parameters={"binary_data_output": True})
    response = await client.post(INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    head, blobs = split_binary(response)
    assert set(blobs) == {"probabilities", "label"}
    got = np.frombuffer(blobs["probabilities"], "<f4").reshape(len(TEXTS), -1)
    want, want_labels, _ = await predict_probabilities(client, TEXTS)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert unpack_bytes(blobs["label"]) == want_labels
    assert "id" not in head


async def test_nested_shape_and_mixed_output_forms(client):
    tensor = {
        "name": "text",
        "shape": [2, 1],
        "datatype": "BYTES",
        "data": [[TEXTS[0]], [TEXTS[1]]],
    }
    outputs = [
        {"name": "label", "parameters": {"binary_data": True}},
        {"name": "probabilities", "parameters": {"binary_data": False}},
    ]
    body = json.dumps({"inputs": [tensor], "outputs": outputs}).encode()
    response = await client.post(INFER, content=body)
    head, blobs = split_binary(response)
    assert [o["name"] for o in head["outputs"]] == ["label", "probabilities"]
    assert unpack_bytes(blobs["label"]) == ["positive", "negative"]
    assert len(head["outputs"][1]["data"]) == 4


async def test_one_output_only(client):
    body = json_request(TEXTS[:1], outputs=[{"name": "label"}])
    data = (await client.post(INFER, content=body)).json()
    assert [o["name"] for o in data["outputs"]] == ["label"]


async def test_classification_extension(client, manifest):
    labels = manifest["labels"]
    outputs = [{"name": "probabilities", "parameters": {"classification": 1}}]
    data = (await client.post(INFER, content=json_request(TEXTS, outputs=outputs))).json()
    (top,) = data["outputs"]
    assert (top["datatype"], top["shape"]) == ("BYTES", [len(TEXTS), 1])
    want, want_labels, _ = await predict_probabilities(client, TEXTS)
    for k, entry in enumerate(top["data"]):
        value, index, label = entry.split(":")
        assert label == want_labels[k] == labels[int(index)]
        assert float(value) == pytest.approx(want[k][int(index)], abs=1e-6)
    outputs[0]["parameters"]["classification"] = 5  # more than there are classes
    data = (await client.post(INFER, content=json_request(TEXTS[:1], outputs=outputs))).json()
    entries = data["outputs"][0]["data"]
    assert len(entries) == len(labels)
    values = [float(e.split(":")[0]) for e in entries]
    assert values == sorted(values, reverse=True)


async def test_no_content_type_and_compressed_bodies(client):
    """tritonclient sends no Content-Type, and may gzip or deflate the request."""
    raw = json_request(TEXTS[:2])
    for body, encoding in (
        (raw, None),
        (gzip.compress(raw), "gzip"),
        (zlib.compress(raw), "deflate"),
    ):
        headers = {"content-encoding": encoding} if encoding else {}
        response = await client.post(INFER, content=body, headers=headers)
        assert response.status_code == 200, (encoding, response.text)
        assert response.json()["outputs"][1]["data"] == ["positive", "negative"]


async def test_gzip_members_are_all_read(client):
    """``gzip`` may write a body as several members (``cat a.gz b.gz``): one body."""
    raw = json_request(TEXTS[:2])
    body = gzip.compress(raw[:40]) + gzip.compress(raw[40:])
    response = await client.post(INFER, content=body, headers={"content-encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][1]["data"] == ["positive", "negative"]


async def test_empty_outputs_list_asks_for_both(client):
    """``"outputs": []`` names no output: both, as when it is absent (Triton reads it so)."""
    data = (await client.post(INFER, content=json_request(TEXTS[:1], outputs=[]))).json()
    assert [o["name"] for o in data["outputs"]] == ["probabilities", "label"]


async def test_versioned_infer_counts_texts_under_its_own_route(client, manifest):
    version = manifest["version"]
    path = f"/v2/models/{BINARY_MODEL}/versions/{version}/infer"
    assert (await client.post(path, content=json_request(["a", "b", "c"]))).status_code == 200
    metrics = (await client.get("/metrics")).text
    route = "/v2/models/{name}/versions/{version}/infer"
    texts = [ln for ln in metrics.splitlines() if ln.startswith("sentiment_texts_total")]
    assert any(f'route="{route}"' in ln and ln.endswith(" 3.0") for ln in texts), texts
    requests = [ln for ln in metrics.splitlines() if ln.startswith("sentiment_requests_total")]
    assert any(f'route="{route}"' in ln for ln in requests), requests


async def test_head_works_on_v2_get_routes(client):
    for path in ("/v2", "/v2/health/live", "/v2/health/ready", f"/v2/models/{BINARY_MODEL}"):
        assert (await client.head(path)).status_code == 200, path


# -- bad input: 400 (404, 413, 415) with {"error": "..."} ------------------------------------
def _tensor(**changes) -> bytes:
    tensor = {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["fine"], **changes}
    return json.dumps({"inputs": [tensor]}).encode()


BAD_BODIES = [
    ("not json", b"{", "not valid JSON"),
    ("empty body", b"", "not valid JSON"),
    ("invalid utf-8 header", b'{"inputs": "\xff"}', "not valid JSON"),
    ("no inputs", b"{}", "'inputs'"),
    ("inputs not a list", b'{"inputs": 3}', "'inputs'"),
    (
        "two inputs",
        json.dumps({"inputs": [json.loads(_tensor())["inputs"][0]] * 2}).encode(),
        "one input",
    ),
    ("wrong input name", _tensor(name="review"), "unknown input 'review'"),
    ("wrong datatype", _tensor(datatype="FP32"), "must be BYTES"),
    ("shape 3-d", _tensor(shape=[1, 1, 1]), "shape [n] or [n, 1]"),
    ("shape [n, 2]", _tensor(shape=[1, 2]), "shape [n] or [n, 1]"),
    ("zero texts", _tensor(shape=[0], data=[]), "at least one text"),
    (
        "too many texts",
        _tensor(shape=[MAX_TEXTS + 1], data=["a"] * (MAX_TEXTS + 1)),
        "the limit is 8",
    ),
    ("shape vs data", _tensor(shape=[2]), "shape says 2 texts, 'data' holds 1"),
    ("no data", _tensor(data=None), "no 'data'"),
    ("data not a list", _tensor(data="fine"), "list of strings"),
    ("number element", _tensor(data=[3]), "element 0 is int"),
    ("empty text", _tensor(data=[""]), "element 0 is empty"),
    ("blank text", _tensor(data=[" \n"]), "element 0 is empty"),
    ("too long", _tensor(data=["a" * (MAX_CHARS + 1)]), "the limit is 300"),
    ("control char", _tensor(data=["a\x00b"]), "control characters"),
    ("lone surrogate", _tensor(data=["fine \ud800"]), "element 0 contains a lone UTF-16 surrogate"),
    (
        "lone surrogate in the id",
        b'{"id": "\\udc00", ' + _tensor()[1:],
        "'id' contains a lone UTF-16 surrogate",
    ),
    (
        "invisible text",
        _tensor(data=["\u200b\ufeff"]),
        "element 0 is only whitespace and invisible",
    ),
    ("a key twice", _tensor()[:-1] + b', "inputs": []}', "key 'inputs' appears twice"),
    (
        "a nested key twice",
        _tensor(data=["a"])[:-3] + b', "data": ["b", "c"]}]}',
        "key 'data' appears twice",
    ),
    ("unknown output", json_request(["x"], outputs=[{"name": "score"}]), "unknown output 'score'"),
    ("output twice", json_request(["x"], outputs=[{"name": "label"}] * 2), "twice"),
    (
        "binary flag type",
        json_request(["x"], outputs=[{"name": "label", "parameters": {"binary_data": "yes"}}]),
        "true or false",
    ),
    (
        "classification type",
        json_request(
            ["x"], outputs=[{"name": "probabilities", "parameters": {"classification": "2"}}]
        ),
        "positive integer",
    ),
    (
        "classification of labels",
        json_request(["x"], outputs=[{"name": "label", "parameters": {"classification": 1}}]),
        "applies to 'probabilities'",
    ),
    (
        "binary_data_output type",
        json_request(["x"], parameters={"binary_data_output": 1}),
        "true or false",
    ),
    ("stray bytes", None, "no input has parameters.binary_data_size"),
]


@pytest.mark.parametrize(("case", "body", "says"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_bad_json_requests_are_400(client, case, body, says):
    headers = {}
    if body is None:  # JSON data, then binary bytes no input claims
        body = json_request(["fine"])
        headers = {"Inference-Header-Content-Length": str(len(body))}
        body += b"\x01\x00\x00\x00x"
    assert says in await bad(client, body, headers=headers)


def _binary(
    texts_blob: bytes, count: int, size: int | str | None = None, header: str | None = None
):
    tensor = {
        "name": "text",
        "shape": [count],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": len(texts_blob) if size is None else size},
    }
    head = json.dumps({"inputs": [tensor]}).encode()
    return head + texts_blob, {"Inference-Header-Content-Length": header or str(len(head))}


def _elements(*raw: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(r)) + r for r in raw)


BAD_BINARY = [
    ("invalid utf-8", _binary(_elements(b"ok", b"\xff\xfe"), 2), "element 1 is not valid UTF-8"),
    ("truncated prefix", _binary(b"\x05\x00", 1), "ends before element 0"),
    ("length past the end", _binary(_elements(b"abc")[:-1], 1), "claims 3 bytes, 2 are left"),
    ("left over", _binary(_elements(b"abc") + b"zz", 1), "2 bytes left over"),
    ("fewer than shape", _binary(_elements(b"abc"), 2), "ends before element 1"),
    ("size mismatch", _binary(_elements(b"abc"), 1, size=99), "binary_data_size is 99"),
    (
        "size a string",
        _binary(_elements(b"abc"), 1, size="7"),
        "must be a number of bytes, not '7'",
    ),
    (
        "size negative",
        _binary(_elements(b"abc"), 1, size=-1),
        "must be a number of bytes, not '-1'",
    ),
    (
        "header length not a number",
        _binary(_elements(b"abc"), 1, header="ten"),
        "Inference-Header-Content-Length",
    ),
    (
        "header length too big",
        _binary(_elements(b"abc"), 1, header="99999"),
        "Inference-Header-Content-Length",
    ),
    (  # str.isdigit() takes it, int() does not: this was a 500
        "header length a superscript digit",
        _binary(_elements(b"abc"), 1, header=b"\xb2"),  # "²" in latin-1, as HTTP sends it
        "Inference-Header-Content-Length",
    ),
    (  # int() refuses over 4,300 digits: this was a 500 too
        "header length of 5000 digits",
        _binary(_elements(b"abc"), 1, header="9" * 5000),
        "Inference-Header-Content-Length",
    ),
    ("empty text", _binary(_elements(b""), 1), "element 0 is empty"),
]


@pytest.mark.parametrize(("case", "request_", "says"), BAD_BINARY, ids=[c[0] for c in BAD_BINARY])
async def test_bad_binary_requests_are_400(client, case, request_, says):
    body, headers = request_
    assert says in await bad(client, body, headers=headers)


async def test_both_data_and_binary_is_400(client):
    body, headers = _binary(_elements(b"abc"), 1)
    head = json.loads(body[: int(headers["Inference-Header-Content-Length"])])
    head["inputs"][0]["data"] = ["abc"]
    new_head = json.dumps(head).encode()
    body = new_head + _elements(b"abc")
    headers = {"Inference-Header-Content-Length": str(len(new_head))}
    assert "both 'data' and binary_data_size" in await bad(client, body, headers=headers)


async def test_compression_errors(client):
    says = await bad(client, b"not gzip", headers={"content-encoding": "gzip"})
    assert "not valid gzip" in says
    raw = json_request(["fine"])
    says = await bad(client, gzip.compress(raw)[:-4], headers={"content-encoding": "gzip"})
    assert "ends too soon" in says  # the CRC and length trailer cut off
    says = await bad(client, gzip.compress(raw) + b"GARBAGE", headers={"content-encoding": "gzip"})
    assert "not valid gzip" in says
    says = await bad(client, zlib.compress(raw) + b"x", headers={"content-encoding": "deflate"})
    assert "1 bytes after its deflate data" in says
    says = await bad(client, b"x", 415, headers={"content-encoding": "br"})
    assert "'br'" in says
    bomb = gzip.compress(b" " * (MAX_BODY * 4))  # small on the wire, too big unpacked
    says = await bad(client, bomb, 413, headers={"content-encoding": "gzip"})
    assert "exceeds" in says


async def test_over_the_body_limit_is_413_in_the_v2_shape(client):
    big = json_request(["a" * (MAX_BODY + 10)])
    assert "SENTIMENT_MAX_BODY_BYTES" in await bad(client, big, 413)


async def test_wrong_method_is_405_in_the_v2_shape(client):
    response = await client.get(INFER)
    assert response.status_code == 405 and "error" in response.json()


async def test_still_serving_after_bad_input(client):
    response = await client.post(INFER, content=json_request(["a fine film"]))
    assert response.status_code == 200


# -- not ready, overloaded ------------------------------------------------------------------------
async def test_overloaded_is_503_with_retry_after(predict_gate):
    settings = make_settings(
        queue_size=1, max_texts_per_request=1, inference_workers=1, max_batch_size=1
    )
    async with serve(settings) as (app, client):
        batcher = app.state.models.current().batcher
        predict_gate.close()
        first = asyncio.create_task(client.post(INFER, content=json_request(["first"])))
        try:
            await asyncio.to_thread(predict_gate.entered.wait, 10)
            second = asyncio.create_task(client.post(INFER, content=json_request(["second"])))
            await wait_until(lambda: batcher.queue_depth == 1)
            response = await client.post(INFER, content=json_request(["third"]))
            assert response.status_code == 503
            assert list(response.json()) == ["error"] and "queued" in response.json()["error"]
            assert int(response.headers["retry-after"]) >= 1
        finally:
            predict_gate.open()
        done = await asyncio.wait_for(asyncio.gather(first, second), 30)
        assert [r.status_code for r in done] == [200, 200]


async def test_not_ready_is_503(bundle_dir):
    async with serve(make_settings()) as (app, client):
        await app.state.models.shutdown()
        probes = (
            "/v2/health/ready",
            f"/v2/models/{BINARY_MODEL}/ready",
            f"/v2/models/{BINARY_MODEL}",
        )
        for path in probes:
            response = await client.get(path)
            assert response.status_code == 503, path
            assert list(response.json()) == ["error"]
            assert response.headers["retry-after"]
        # a probe's 503 is an answer, not refused work: as /health/ready's, not counted
        assert "sentiment_rejected_total{" not in (await client.get("/metrics")).text
        response = await client.post(INFER, content=json_request(["late"]))
        assert response.status_code == 503 and "shutting down" in response.json()["error"]
        assert "sentiment_rejected_total{" in (await client.get("/metrics")).text
        assert (await client.get("/v2/health/live")).json() == {"live": True}
