"""The committed default bundle: its recorded figures hold when re-measured here.

Scores the full 25,000-review IMDB test set through onnxruntime and the shared tokenizer
(the service's own path), and compares the ONNX model with the real Keras model rebuilt
from the bundle's config and weights.
"""

from __future__ import annotations

import numpy as np
import pytest

from service.bundle import load_bundle
from service.settings import Settings
from training.data import default_data_path, load_imdb

pytestmark = pytest.mark.slow
ACCURACY_TARGET = 0.88  # issue 2: the seeds' recipe measures 0.853 here


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(Settings().resolved_model_dir())


@pytest.fixture(scope="module")
def test_reviews():
    if not default_data_path().exists():
        pytest.fail(f"IMDB data not found at {default_data_path()} (see ../shared/data/README.md)")
    return load_imdb(splits=("test",))["test"]


def score_in_batches(bundle, texts: list[str], batch_size: int = 128) -> np.ndarray:
    ids = bundle.encoder.encode_ids(texts)
    order = np.argsort([len(s) for s in ids], kind="stable")
    scores = np.empty(len(ids), dtype=np.float32)
    for start in range(0, len(ids), batch_size):
        idx = order[start : start + batch_size]
        scores[idx] = bundle.score_ids([ids[i] for i in idx])
    return scores


def test_full_test_set_accuracy_matches_manifest(bundle, test_reviews):
    assert len(test_reviews) == 25_000
    labels = np.array([r.label for r in test_reviews])
    scores = score_in_batches(bundle, [r.text for r in test_reviews])
    accuracy = float(np.mean((scores >= bundle.threshold) == labels))
    recorded = bundle.manifest["metrics"]["test"]
    assert recorded["n"] == 25_000
    assert abs(accuracy - recorded["accuracy"]) <= 2 / 25_000, (accuracy, recorded["accuracy"])
    assert accuracy >= ACCURACY_TARGET


def test_onnx_matches_the_keras_model(bundle, test_reviews):
    pytest.importorskip("tensorflow")
    from training.export import verify_parity
    from training.model import load_trained_model
    from training.train import _varied_lengths

    model = load_trained_model(bundle.path)
    ids = bundle.encoder.encode_ids([r.text for r in test_reviews])
    sample = [ids[i] for i in _varied_lengths(ids, 2000)]
    report = verify_parity(model, bundle.path / "model.onnx", sample)
    assert report["max_abs_diff"] <= 1e-5 and report["label_mismatches"] == 0


def test_graph_uses_a_fused_recurrent_node(bundle):
    import onnx

    ops = {n.op_type for n in onnx.load(str(bundle.path / "model.onnx")).graph.node}
    assert "LSTM" in ops and "Loop" not in ops


def test_tokenizer_fast_path_matches_rust_on_imdb(bundle, test_reviews):
    """The Python path against the Rust tokenizer, with the real 20k vocabulary."""
    encoder = bundle.encoder
    # 2,500 reviews (~90% plain ASCII) and every review with a non-ASCII character.
    texts = [r.text for r in test_reviews[::10]]
    texts += [r.text for r in test_reviews if not r.text.isascii()]
    python = sum(encoder._normalize(t) is not None for t in texts)
    assert python >= 0.97 * len(texts)  # the Rust path is the exception
    fast = encoder.encode(texts)
    for text, got in zip(texts, fast, strict=True):
        enc = encoder.tokenizer.encode(text, add_special_tokens=False)
        assert got == encoder._finish(enc.ids, enc.tokens, with_tokens=True), text[:80]
    ids_only = encoder.encode(texts, with_tokens=False)
    assert [(list(e.ids), e.unknown_tokens) for e in ids_only] == [
        (e.ids, e.unknown_tokens) for e in fast
    ]
