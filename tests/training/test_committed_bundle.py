"""The committed default bundle: its recorded figures hold when re-measured here.

Scores the full 25,000-review IMDB test set through onnxruntime and the shared tokenizer
(the service's own path), and compares the ONNX model with the real Keras model rebuilt
from the bundle's config and weights.
"""

from __future__ import annotations

import numpy as np
import pytest

from sentiment_core.batching import score_in_length_order, spread_over_lengths
from service.encoding.python_path import PythonPathEncoder
from service.model.loader import load_bundle
from service.settings import Settings
from tests.support.servers import BINARY_MODEL
from training.data import default_data_path, load_imdb

pytestmark = pytest.mark.slow
ACCURACY_TARGET = 0.88  # issue 2: the seeds' recipe measures 0.853 here


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(Settings(models=[BINARY_MODEL]).resolved_model_dir())


@pytest.fixture(scope="module")
def test_reviews():
    if not default_data_path().exists():
        pytest.fail(f"IMDB data not found at {default_data_path()} (see ../shared/data/README.md)")
    return load_imdb(splits=("test",))["test"]


def score_in_batches(bundle, texts: list[str], batch_size: int = 128) -> np.ndarray:
    ids = bundle.encoder.encode_ids(texts)
    return bundle.manifest.scores(score_in_length_order(bundle.outputs, ids, batch_size))


def test_full_test_set_accuracy_matches_manifest(bundle, test_reviews):
    assert len(test_reviews) == 25_000
    labels = np.array([r.label for r in test_reviews])
    scores = score_in_batches(bundle, [r.text for r in test_reviews])
    accuracy = float(np.mean((scores >= bundle.threshold) == labels))
    recorded = bundle.manifest.metrics["test"]
    assert recorded["n"] == 25_000
    assert abs(accuracy - recorded["accuracy"]) <= 2 / 25_000, (accuracy, recorded["accuracy"])
    assert accuracy >= ACCURACY_TARGET


def test_onnx_matches_the_keras_model(bundle, test_reviews):
    pytest.importorskip("tensorflow")
    from training.export import verify_parity
    from training.model import load_trained_model

    model = load_trained_model(bundle.path)
    ids = bundle.encoder.encode_ids([r.text for r in test_reviews])
    sample = [ids[i] for i in spread_over_lengths([len(s) for s in ids], 2000)]
    report = verify_parity(model, bundle.path / "model.onnx", sample)
    assert report["max_abs_diff"] <= 1e-5 and report["label_mismatches"] == 0


def test_graph_uses_a_fused_recurrent_node(bundle):
    import onnx

    ops = {n.op_type for n in onnx.load(str(bundle.path / "model.onnx")).graph.node}
    assert "LSTM" in ops and "Loop" not in ops


def test_tokenizer_fast_path_matches_rust_on_imdb(bundle, test_reviews):
    """The Python path against the reference (Rust) encoder, with the real vocabulary."""
    encoder = bundle.encoder
    assert isinstance(encoder, PythonPathEncoder)  # what the service serves by default
    # 2,500 reviews (~90% plain ASCII) and every review with a non-ASCII character.
    texts = [r.text for r in test_reviews[::10]]
    texts += [r.text for r in test_reviews if not r.text.isascii()]
    python = sum(encoder.normalize(t) is not None for t in texts)
    assert python >= 0.97 * len(texts)  # the Rust path is the exception
    fast = encoder.encode(texts)
    reference = encoder.reference.encode(texts)
    for text, got, want in zip(texts, fast, reference, strict=True):
        assert got == want, text[:80]
    ids_only = encoder.encode(texts, with_tokens=False)
    assert [(list(e.ids), e.unknown_tokens) for e in ids_only] == [
        (e.ids, e.unknown_tokens) for e in fast
    ]


@pytest.mark.parametrize("name", ["sentiment-lstm", "sentiment-general"])
def test_each_committed_card_is_what_the_card_code_renders(name):
    """A card format change reaches the committed bundles (``python -m training.bundle``)."""
    import json

    from sentiment_core.bundle import promoted_bundle
    from training.card import model_card

    bundle_dir = promoted_bundle(Settings().models_root, name)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    metrics = json.loads((bundle_dir / "metrics.json").read_text())
    card = (bundle_dir / "MODEL_CARD.md").read_text()
    assert card == model_card(manifest, metrics)
    assert "| recall by label |" in card and "negative 0." in card
