"""The n-gram branch: the graph computes the features the fit used, adds nothing while the
RNN trains, folds the stacking exactly, exports with parity, and a job trains it end to end."""

from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from sentiment_core.encoder import pad_batch
from training.calibrate import logits_of
from training.export import export_onnx, verify_parity
from training.fit import Rows
from training.model import ModelConfig, build_model, layers_of
from training.ngram import bigram_index, fit_ngram_branch, nb_ratios, ngram_features

VOCAB, BUCKETS = 50, 400
CFG = ModelConfig(VOCAB, 6, 4, pooling="last+mean+max", ngram_buckets=BUCKETS)


def sequences(n: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, VOCAB, int(k)).tolist() for k in rng.integers(1, 30, n)]


def test_bigram_buckets_follow_the_unigram_ids_and_stay_in_range():
    first, second = np.arange(1, VOCAB), np.arange(VOCAB - 1, 0, -1)
    index = bigram_index(first, second, VOCAB, BUCKETS)
    assert index.min() >= VOCAB and index.max() < BUCKETS
    assert bigram_index(3, 4, VOCAB, BUCKETS) != bigram_index(4, 3, VOCAB, BUCKETS)  # ordered


def test_features_count_each_ngram_over_the_root_of_the_length():
    x = ngram_features([[5, 7, 5, 7], [9]], VOCAB, BUCKETS).toarray()
    root = 1 / np.sqrt(4)
    assert x[0, 5] == pytest.approx(2 * root) and x[0, 7] == pytest.approx(2 * root)
    assert x[0, bigram_index(5, 7, VOCAB, BUCKETS)] == pytest.approx(2 * root)  # 5 7 twice
    assert x[0, bigram_index(7, 5, VOCAB, BUCKETS)] == pytest.approx(root)
    assert x[1, 9] == pytest.approx(1.0) and x[1].sum() == pytest.approx(1.0)  # no bigram


def test_nb_ratios_point_towards_the_label_a_feature_comes_with():
    x = ngram_features([[1, 2], [1, 2], [3, 4], [3, 4]], VOCAB, BUCKETS)
    ratios = nb_ratios(x, np.array([1, 1, 0, 0]))
    assert ratios[1] > 0 > ratios[3] and ratios[10] == pytest.approx(0.0)  # unseen: neutral


def test_the_graph_computes_the_features_times_the_table_padding_ignored():
    model = build_model(CFG)
    layer = layers_of(model, CFG)["ngram"]
    table = np.random.default_rng(1).normal(size=(BUCKETS, 1)).astype(np.float32)
    layer.table.assign(table)
    seqs = [*sequences(40), [7]]
    expected = ngram_features(seqs, VOCAB, BUCKETS) @ table[:, 0]
    got = np.asarray(layer(pad_batch(seqs)))[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_the_branch_adds_nothing_until_fit():
    model = build_model(CFG)
    assert not layers_of(model, CFG)["ngram"].trainable_weights  # frozen: zero in training
    plain = build_model(ModelConfig(VOCAB, 6, 4, pooling="last+mean+max"))
    weights = [w for w in model.get_weights() if w.shape != (BUCKETS, 1)]
    weights[-2] = weights[-2][:-1]  # the output kernel without the n-gram row
    plain.set_weights(weights)
    batch = pad_batch(sequences(20))
    np.testing.assert_allclose(model(batch), plain(batch), atol=1e-6)


def labelled(n: int, seed: int, outputs: int = 1) -> Rows:
    """Label k: ids mostly from the k-th of (labels) equal parts of the vocabulary."""
    rng = np.random.default_rng(seed)
    labels = max(2, outputs)
    y = rng.integers(0, labels, n)
    part = (VOCAB - 1) // labels
    seqs = []
    for label, k in zip(y, rng.integers(3, 30, n), strict=True):
        own = rng.integers(1 + label * part, 1 + (label + 1) * part, k)
        seqs.append(np.where(rng.random(k) < 0.75, own, rng.integers(1, VOCAB, k)).tolist())
    return Rows([], seqs, y)


@pytest.mark.parametrize("outputs", [1, 3])
def test_the_fit_folds_the_stacking_into_the_model_exactly(outputs):
    cfg = dataclasses.replace(CFG, outputs=outputs)
    model = build_model(cfg)
    train, validation = labelled(300, 1, outputs), labelled(120, 2, outputs)
    rnn = logits_of(model, cfg, validation)
    report = fit_ngram_branch(model, cfg, train, validation, lambda _: None)
    assert report["stacked_val_accuracy"] > 0.85  # the n-gram model sees the rule directly
    # The folded logits: the RNN's and the table's n-gram logits, each times its stacking
    # weights, plus one constant per label (the intercepts), whatever the text.
    after = logits_of(model, cfg, validation)
    ngram = np.asarray(layers_of(model, cfg)["ngram"](pad_batch(validation.ids)))
    on_rnn, on_ngram = np.array(report["stacking"]["rnn"]), np.array(report["stacking"]["ngram"])
    constant = after - rnn @ on_rnn - ngram @ on_ngram
    assert np.ptp(constant, axis=0).max() < 1e-2 and np.ptp(ngram) > 1.0
    assert after.shape == (len(validation.ids), outputs)
    predicted = (after[:, 0] > 0) if outputs == 1 else after.argmax(axis=1)
    assert np.mean(predicted == validation.y) == pytest.approx(
        report["stacked_val_accuracy"], abs=0.01
    )


@pytest.mark.parametrize("outputs", [1, 3])
def test_a_model_with_the_branch_exports_with_parity(tmp_path, outputs):
    cfg = dataclasses.replace(CFG, outputs=outputs)
    model = build_model(cfg)
    table = np.random.default_rng(2).normal(size=(BUCKETS, outputs)).astype(np.float32)
    layers_of(model, cfg)["ngram"].table.assign(table)
    kernel, bias = layers_of(model, cfg)["output"].get_weights()
    kernel[-outputs:] = np.eye(outputs)
    layers_of(model, cfg)["output"].set_weights([kernel, bias])
    path = tmp_path / "model.onnx"
    ops = export_onnx(model, cfg, path)
    assert ops.get("LSTM") == 1 and ops.get("Gather") == 3  # embedding, unigrams, bigrams
    report = verify_parity(model, path, [*sequences(300, 3), [4]])
    assert report["max_abs_diff"] <= 1e-5 and report["label_mismatches"] == 0


@pytest.mark.slow
@pytest.mark.train
def test_a_job_with_the_branch_writes_a_bundle_the_service_serves(tmp_path):
    from service.model.loader import load_bundle
    from tests.training.test_train_three_class import CONFIG, WORDS, write_csv
    from training.train import main

    rng = random.Random(5)
    for name, n in (("train.csv", 240), ("test.csv", 60)):
        write_csv(tmp_path / name, n, rng)
    config = CONFIG.replace('["negative", "neutral", "positive"]', '["negative", "positive"]')
    config = config.replace("neutral = 3, ", "").replace("positive = [4, 5] }",
                            "positive = [4, 5] }\nskip_labels = [3]")  # fmt: skip
    (tmp_path / "binary.toml").write_text(config)
    models = tmp_path / "models"
    assert main(["--config", str(tmp_path / "binary.toml"), "--models-dir", str(models),
                 "--version", "n1", "--no-quantize", "--no-baseline",
                 "--ngram-buckets", "1000"]) == 0  # fmt: skip
    bundle_dir = models / "shop-sentiment" / "n1"
    ngram = json.loads((bundle_dir / "metrics.json").read_text())["training"]["ngram"]
    assert ngram["buckets"] == 1000 and ngram["stacked_val_accuracy"] >= 0.9
    card = (bundle_dir / "MODEL_CARD.md").read_text()
    assert "n-gram logit (1,000 buckets)" in card and "stacked with the RNN" in card
    bundle = load_bundle(bundle_dir)
    good, bad = bundle.score_texts([" ".join(WORDS["positive"]), " ".join(WORDS["negative"])])
    assert good > 0.5 > bad


def test_too_few_buckets_are_refused_before_training(tmp_path, capsys):
    from tests.training.test_train_three_class import CONFIG, write_csv
    from training.train import main

    for name in ("train.csv", "test.csv"):
        write_csv(tmp_path / name, 30, random.Random(1))
    (tmp_path / "three.toml").write_text(CONFIG)
    argv = ["--config", str(tmp_path / "three.toml"), "--models-dir", str(tmp_path / "m")]
    assert main([*argv, "--ngram-buckets", "100"]) == 2  # under twice the vocabulary (200)
    assert (
        "--ngram-buckets must be 0 (off) or at least twice --vocab-size" in capsys.readouterr().err
    )
    assert not (tmp_path / "m").exists()
