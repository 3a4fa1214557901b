"""The unmodified Triton client (``tritonclient.http``, a test dependency) against a live
server: health, metadata and inference with JSON and binary tensors, errors; every
probability equal to /predict's."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

from tests.support.servers import BINARY_MODEL, NEGATIVE_TEXT, POSITIVE_TEXT, Server

TEXTS = [
    POSITIVE_TEXT,
    NEGATIVE_TEXT,
    "It was fine, I guess. Nothing special; the popcorn was good.",
    "Ünïcödé café — “quotes” and emoji 🎬 are text too",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("triton"), SENTIMENT_LOG_LEVEL="warning") as live:
        yield live


@pytest.fixture(scope="module")
def client(server):
    # tritonclient takes host:port, no scheme
    triton = th.InferenceServerClient(f"127.0.0.1:{server.port}")
    yield triton
    triton.close()


@pytest.fixture(scope="module")
def predicted(server) -> tuple[np.ndarray, list[str]]:
    """/predict's probabilities (in label order) and labels for TEXTS, from the same server."""
    data = httpx.post(f"{server.base}/predict", json={"texts": TEXTS}, timeout=30).json()
    labels = list(data["predictions"][0]["probabilities"])
    probs = np.array([[p["probabilities"][k] for k in labels] for p in data["predictions"]])
    return probs, [p["label"] for p in data["predictions"]]


def text_input(binary: bool, shape=None) -> th.InferInput:
    values = np.array(TEXTS, dtype=object)
    if shape is not None:
        values = values.reshape(shape)
    tensor = th.InferInput("text", list(values.shape), "BYTES")
    tensor.set_data_from_numpy(values, binary_data=binary)
    return tensor


def as_str(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else v for v in values.ravel()]


def test_health(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(BINARY_MODEL)
    assert not client.is_model_ready("no-such-model")


def test_metadata(client, manifest):
    server = client.get_server_metadata()
    assert "binary_tensor_data" in server["extensions"]
    meta = client.get_model_metadata(BINARY_MODEL)
    assert meta["name"] == BINARY_MODEL and meta["versions"] == [manifest["version"]]
    assert [i["name"] for i in meta["inputs"]] == ["text"]
    assert [o["name"] for o in meta["outputs"]] == ["probabilities", "label"]
    assert client.get_model_metadata(BINARY_MODEL, manifest["version"]) == meta


@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
def test_infer_equals_predict(client, predicted, manifest, binary_in, binary_out):
    outputs = [
        th.InferRequestedOutput("probabilities", binary_data=binary_out),
        th.InferRequestedOutput("label", binary_data=binary_out),
    ]
    result = client.infer(BINARY_MODEL, [text_input(binary_in)], outputs=outputs, request_id="tc-1")
    response = result.get_response()
    assert response["model_name"] == BINARY_MODEL
    assert response["model_version"] == manifest["version"]
    assert response["id"] == "tc-1"
    want, want_labels = predicted
    probs = result.as_numpy("probabilities")
    assert probs.dtype == np.float32 and probs.shape == want.shape
    np.testing.assert_allclose(probs, want, rtol=0, atol=1e-6)
    assert as_str(result.as_numpy("label")) == want_labels


def test_infer_default_outputs_and_n_by_1_shape(client, predicted):
    """No outputs named: tritonclient asks for binary outputs; a [n, 1] input works too."""
    result = client.infer(BINARY_MODEL, [text_input(True, shape=(len(TEXTS), 1))])
    np.testing.assert_allclose(result.as_numpy("probabilities"), predicted[0], rtol=0, atol=1e-6)
    assert as_str(result.as_numpy("label")) == predicted[1]


def test_classification(client, predicted, manifest):
    output = th.InferRequestedOutput("probabilities", binary_data=False, class_count=2)
    result = client.infer(BINARY_MODEL, [text_input(False)], outputs=[output])
    top = result.as_numpy("probabilities")
    assert top.shape == (len(TEXTS), 2)
    want, want_labels = predicted
    for k, row in enumerate(top):
        value, index, label = as_str(row)[0].split(":")
        assert label == want_labels[k] == manifest["labels"][int(index)]
        assert float(value) == pytest.approx(want[k].max(), abs=1e-6)


def test_compressed_request(client, predicted):
    for algorithm in ("gzip", "deflate"):
        result = client.infer(
            BINARY_MODEL, [text_input(True)], request_compression_algorithm=algorithm
        )
        assert as_str(result.as_numpy("label")) == predicted[1]


def test_errors_reach_the_client_as_messages(client):
    with pytest.raises(InferenceServerException) as unknown:
        client.infer("no-such-model", [text_input(True)])
    assert unknown.value.status() == "404"
    assert "no-such-model" in unknown.value.message()

    bad = th.InferInput("text", [1], "BYTES")
    bad.set_data_from_numpy(np.array([b"\xff\xfe"], dtype=object))
    with pytest.raises(InferenceServerException) as invalid:
        client.infer(BINARY_MODEL, [bad])
    assert invalid.value.status() == "400"
    assert "not valid UTF-8" in invalid.value.message()

    blank = th.InferInput("text", [1], "BYTES")
    blank.set_data_from_numpy(np.array(["   "], dtype=object), binary_data=False)
    with pytest.raises(InferenceServerException) as empty:
        client.infer(BINARY_MODEL, [blank])
    assert "empty or only whitespace" in empty.value.message()

    with pytest.raises(InferenceServerException) as metadata:
        client.get_model_metadata("no-such-model")
    assert metadata.value.status() == "404"
