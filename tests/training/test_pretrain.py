"""Pretraining on a tiny corpus: the language model learns, its layers reach the classifier,
and the cache is hit, missed and repaired as its inputs say."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras

from sentiment_core.encoder import TextEncoder
from sentiment_core.tokenizer import train_tokenizer
from training.config import Config
from training.fit import encode_rows
from training.model import ModelConfig, build_model
from training.pretrain import initial_weights, lm_texts
from training.sources import Example

WORDS = ["the", "film", "was", "good", "and", "the", "plot", "was", "bad", "but", "the", "cast"]


def corpus(n: int = 60, seed: int = 0) -> list[Example]:
    rng = np.random.default_rng(seed)
    texts = [
        " ".join(np.roll(WORDS, int(rng.integers(0, 5)))[: int(rng.integers(6, 14))])
        for _ in range(n)
    ]
    texts[1] = texts[0]  # a repeated text is read once
    return [Example(t, "positive", "s", t, "train") for t in texts]


@pytest.fixture(scope="module")
def setup():
    examples = corpus()
    encoder = TextEncoder(train_tokenizer([e.text for e in examples], 100), 30)
    rows = encode_rows(examples, encoder, ["negative", "positive"])
    model_cfg = ModelConfig(encoder.vocab_size, 8, 6, pooling="last+mean+max")
    return rows, encoder.tokenizer.get_vocab(), model_cfg


def settings(tmp_path, **changes) -> Config:
    base = Config(
        pretrain=True, pretrain_epochs=1, pretrain_output_vocab=8, pretrain_target_share=1.0,
        pretrain_batch_size=8, pretrain_heldout=0.2, pretrain_learning_rate=0.02,
        pretrain_cache=str(tmp_path / "cache"), embedding_dim=8, units=6, max_length=30,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def run(cfg, setup, log=None):
    rows, vocab, model_cfg = setup
    lines = []
    weights, report = initial_weights(cfg, model_cfg, rows, vocab, (log or lines.append))
    return weights, report["pretraining"], lines


def test_the_language_model_learns_and_reads_training_text_once(tmp_path, setup):
    _, report, _ = run(settings(tmp_path, pretrain_cache="", pretrain_epochs=8), setup)
    texts, _ = lm_texts(setup[0])
    unique = len({e.text for e in setup[0].examples})
    assert len(texts) == unique < 60 and report["texts"] + report["heldout_texts"] == unique
    assert report["cache"] == "off" and len(report["seconds_per_epoch"]) == 8
    first, last = report["perplexity"][0], report["perplexity"][-1]
    for direction in ("next", "previous"):  # 9 classes: a uniform guess is perplexity 9
        assert last[direction] < 0.75 * first[direction] and last[direction] < 6


def test_pretrained_layers_reach_the_classifier_by_name(tmp_path, setup):
    weights, report, _ = run(settings(tmp_path, pretrain_epochs=1), setup)
    assert set(weights) == {"embedding", "bi_lstm"}
    # --pretrain-transfer embedding: the same language model (a cache hit), its embedding only
    only, again, _ = run(
        settings(tmp_path, pretrain_epochs=1, pretrain_transfer="embedding"), setup
    )
    assert set(only) == {"embedding"} and again["cache"] == "hit" and again["key"] == report["key"]
    assert np.array_equal(only["embedding"][0], weights["embedding"][0])
    model = build_model(setup[2])
    for name, arrays in weights.items():
        model.get_layer(name).set_weights(arrays)  # same shapes, in the same order
        assert all(
            np.array_equal(a, b)
            for a, b in zip(model.get_layer(name).get_weights(), arrays, strict=True)
        )


def test_the_cache_is_hit_missed_and_repaired(tmp_path, setup):
    cfg = settings(tmp_path, pretrain_epochs=1)
    first, report, _ = run(cfg, setup)
    assert report["cache"] == "miss"
    again, report_again, lines = run(cfg, setup)
    assert report_again["cache"] == "hit" and report_again["key"] == report["key"]
    assert any("cache hit" in line for line in lines)
    assert np.array_equal(again["bi_lstm"][0], first["bi_lstm"][0])
    # Other texts: another key, pretrained anew (every other input: test_pretrain_cache.py).
    rows, vocab, model_cfg = setup
    fewer = dataclasses.replace(rows, examples=rows.examples[:20], ids=rows.ids[:20])
    _, other = initial_weights(cfg, model_cfg, fewer, vocab, lambda line: None)
    assert other["pretraining"]["cache"] == "miss" and other["pretraining"]["key"] != report["key"]
    # A damaged entry is reported and recomputed, never used.
    npz = tmp_path / "cache" / report["key"] / "weights.npz"
    npz.write_bytes(npz.read_bytes()[:-100])
    redone, report_redone, lines = run(cfg, setup)
    assert report_redone["cache"] == "miss" and any("not used" in line for line in lines)
    assert run(cfg, setup)[1]["cache"] == "hit"  # repaired
    assert redone["embedding"][0].shape == first["embedding"][0].shape


def test_neither_direction_sees_the_word_it_predicts():
    """Forward output at t reads words 0..t only, backward output at t words t..end only
    (padding included: a post-padded row reads the same as the unpadded one)."""
    from training.lm_model import build_lm

    model = build_lm(ModelConfig(30, 4, 3), classes=30)
    ids = np.array([[5, 6, 7, 8, 9, 0, 0]], dtype=np.int32)
    positions = np.arange(7, dtype=np.int32)[None, :]

    def outputs(batch):
        out = model((batch, positions), training=False)
        return {k: np.asarray(v)[0] for k, v in out.items()}

    base = outputs(ids)
    changed = ids.copy()
    changed[0, 2] = 20  # the word at position 2
    after = outputs(changed)
    assert np.allclose(after["next"][:2], base["next"][:2])  # positions 0-1 predict 1-2
    assert not np.allclose(after["next"][2], base["next"][2])
    assert np.allclose(after["previous"][3:5], base["previous"][3:5])  # 3-4 predict 2-3
    assert not np.allclose(after["previous"][2], base["previous"][2])
    trimmed = model((ids[:, :5], positions[:, :5]), training=False)["previous"]
    assert np.allclose(np.asarray(trimmed)[0], base["previous"][:5], atol=1e-6)


def test_the_classifier_reads_with_the_language_models_encoder():
    """With the LM's layers, the classifier's final states are the LM's outputs at the
    last real word (forward) and at the first word (backward): each direction landed on its
    own side, gates and all."""
    from training.lm_model import build_lm, encoder_layers

    cfg = ModelConfig(30, 4, 3, pooling="last")
    lm = build_lm(cfg, classes=30)
    rng = np.random.default_rng(0)
    for layer in encoder_layers(cfg):  # not the init: make the two directions differ
        lm.get_layer(layer).set_weights(
            [rng.normal(size=w.shape) for w in lm.get_layer(layer).get_weights()]
        )
    classifier = build_model(cfg)
    for layer in encoder_layers(cfg):
        classifier.get_layer(layer).set_weights(lm.get_layer(layer).get_weights())
    ids = np.array([[5, 6, 7, 8, 0, 0]], dtype=np.int32)
    sequences = lm.get_layer("bi_lstm")(lm.get_layer("embedding")(ids))
    forward, backward = (np.asarray(s)[0] for s in sequences)
    encoder = keras.Model(classifier.input, classifier.get_layer("features").input)
    final_forward, final_backward = (np.asarray(s)[0] for s in encoder(ids))
    assert np.allclose(final_forward, forward[3], atol=1e-6)  # after the last real word
    assert np.allclose(final_backward, backward[0], atol=1e-6)  # after reading back to word 0


def test_an_unwritable_cache_folder_does_not_stop_the_job(tmp_path, setup):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    weights, report, lines = run(settings(tmp_path, pretrain_epochs=1), setup)
    assert report["cache"] == "unwritable" and set(weights) == {"embedding", "bi_lstm"}
    assert any("cache entry not written" in line for line in lines)
