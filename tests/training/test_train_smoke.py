"""End to end on a few hundred real reviews: train one epoch, export, verify, bundle, serve."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorflow")

from sentiment_core.bundle import sha256_file
from service.model.loader import load_bundle
from training.data import default_data_path
from training.train import main, parse_args, run

pytestmark = [pytest.mark.slow, pytest.mark.train]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    if not default_data_path().exists():
        pytest.fail(f"IMDB data not found at {default_data_path()} (see ../shared/data/README.md)")
    models = tmp_path_factory.mktemp("models")
    cfg = parse_args(
        ["--limit", "400", "--epochs", "1", "--parity-texts", "300", "--models-dir", str(models),
         "--version", "smoke", "--vocab-size", "3000", "--max-length", "120",
         "--pooling", "last+mean+max", "--units", "16", "--embedding-dim", "16"]
    )  # fmt: skip
    return run(cfg)


def test_bundle_has_every_file_and_matching_hashes(bundle_dir):
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    for name in ["model.onnx", "tokenizer.json", "MODEL_CARD.md", "curves.png",
                 "confusion.png", "config.json", "metrics.json", "keras.weights.h5"]:  # fmt: skip
        assert (bundle_dir / name).is_file(), name
    # The int8 variant ships exactly when its validation accuracy passed the gate (an
    # untrained smoke model can fail it; test_export checks the quantized file itself).
    int8 = manifest["metrics"]["int8"]
    assert int8["kept"] == (int8["accuracy_drop"] <= 0.003)
    assert (bundle_dir / "model.int8.onnx").is_file() == int8["kept"]
    assert (manifest["variants"].get("int8") == "model.int8.onnx") == int8["kept"]
    for name, info in manifest["files"].items():
        assert sha256_file(bundle_dir / name) == info["sha256"], name
    assert not list(bundle_dir.parent.glob("*.partial"))


def test_manifest_records_what_serving_needs(bundle_dir):
    m = json.loads((bundle_dir / "manifest.json").read_text())
    assert m["format_version"] == 2 and m["name"] == "sentiment-lstm" and m["version"] == "smoke"
    assert m["input"] == {
        "name": "input_ids", "dtype": "int32", "max_length": 120, "truncation": "head+tail",
        "padding": "post", "pad_id": 0, "unk_id": 1, "vocab_size": m["input"]["vocab_size"],
    }  # fmt: skip
    assert m["labels"] == ["negative", "positive"]
    assert m["decision"] == {"rule": "threshold", "threshold": 0.5}
    assert m["output"]["kind"] == "sigmoid"
    assert m["hyperparameters"]["epochs"] == 1 and m["libraries"]["onnxruntime"]
    assert len(m["reference"]) >= 8
    test = m["metrics"]["test"]
    assert test["n"] == 400 and 0 <= test["accuracy"] <= 1
    assert set(test["confusion_matrix"]) == {"tn", "fp", "fn", "tp"}
    assert sum(test["confusion_matrix"].values()) == 400
    assert m["metrics"]["training"]["wall_seconds"] > 0
    # The one source's figures are the pooled ones, with the baseline's beside them.
    imdb = m["metrics"]["sources"]["imdb"]
    assert imdb["test"]["accuracy"] == test["accuracy"] and imdb["test"]["n"] == 400
    assert 0 <= imdb["baseline"]["accuracy"] <= 1


def test_parity_was_verified_and_graph_is_fused(bundle_dir):
    m = json.loads((bundle_dir / "manifest.json").read_text())
    parity = m["metrics"]["parity"]
    assert parity["texts"] == 300 and parity["max_abs_diff"] <= 1e-5
    assert parity["label_mismatches"] == 0
    assert m["metrics"]["fused_recurrent_node"] is True


def test_service_loads_and_self_checks_the_new_bundle(bundle_dir):
    bundle = load_bundle(bundle_dir)  # raises if hashes or the self-check disagree
    refs = bundle.manifest.reference
    scores = bundle.score_texts([r.text for r in refs])
    assert max(abs(s - r.score) for s, r in zip(scores, refs, strict=True)) <= 1e-5


def test_missing_data_is_a_clear_cli_error(tmp_path, capsys):
    code = main(["--data", str(tmp_path / "absent.tar.gz"), "--models-dir", str(tmp_path)])
    assert code == 2
    assert "absent.tar.gz" in capsys.readouterr().err
