"""The language model around the classifier's encoder, its training, and its perplexity.

Embedding → (Bi)LSTM with the classifier's layer names and shapes, so its weights move
into the classifier by name. The forward direction's output at position t predicts the word
at t + 1 (it has read words 0..t), the backward direction's the word at t - 1 (it has read
the words from the end down to t); each direction has its own softmax over the output
classes (training/lm_data.py), computed only at the sampled positions.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from sentiment_core.batching import length_sorted_batches
from sentiment_core.encoder import pad_batch
from training.lm_data import LMBatching, lm_batches, lm_targets, sample_positions
from training.model import CELLS, ModelConfig
from training.progress import EpochProgress

DROPOUT = 0.1  # on the embedding channels and on the LSTM outputs (the LM overfits little)
EVAL_BATCH = 32  # held-out windows per perplexity step (logits: 32 × window × classes)


@keras.saving.register_keras_serializable("sentiment")
class TakePositions(keras.layers.Layer):
    """(batch, time, features) at (batch, P) positions → (batch, P, features); no mask."""

    def call(self, sequence, positions):
        index = ops.expand_dims(ops.cast(positions, "int32"), -1)
        return ops.take_along_axis(sequence, index, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None


def directions(cfg: ModelConfig) -> tuple[str, ...]:
    return ("next", "previous") if cfg.bidirectional else ("next",)


def encoder_layers(cfg: ModelConfig) -> tuple[str, str]:
    """The names of the layers pretraining trains (and the classifier receives)."""
    return "embedding", f"bi_{cfg.cell}" if cfg.bidirectional else cfg.cell


def build_lm(cfg: ModelConfig, classes: int) -> keras.Model:
    ids = keras.Input(shape=(None,), dtype="int32", name="input_ids")
    positions = keras.Input(shape=(None,), dtype="int32", name="positions")
    x = keras.layers.Embedding(cfg.vocab_size, cfg.embedding_dim, mask_zero=True, name="embedding")(
        ids
    )
    x = keras.layers.SpatialDropout1D(DROPOUT, name="embedding_dropout")(x)
    rnn = CELLS[cfg.cell](cfg.units, name=cfg.cell, return_sequences=True)
    if cfg.bidirectional:
        rnn = keras.layers.Bidirectional(rnn, merge_mode=None, name=f"bi_{cfg.cell}")
    sequences = rnn(x)
    sequences = sequences if cfg.bidirectional else [sequences]
    outputs = {}
    for name, sequence in zip(directions(cfg), sequences, strict=True):
        picked = TakePositions(name=f"{name}_positions")(sequence, positions)
        picked = keras.layers.Dropout(DROPOUT, name=f"{name}_dropout")(picked)
        outputs[name] = keras.layers.Dense(classes, name=name)(picked)  # logits
    return keras.Model([ids, positions], outputs, name="language_model")


def train_lm(
    model: keras.Model,
    windows: list[np.ndarray],
    heldout: list[np.ndarray],
    batching: LMBatching,
    settings: dict,
    rng: np.random.Generator,
    log: Callable[[str], None],
) -> dict:
    """Train ``model`` for ``settings["epochs"]``; returns the report (perplexity per epoch
    on the held-out windows, seconds and tokens per epoch)."""
    tokens = sum(len(w) for w in windows)
    per_epoch = len(windows)
    if settings["tokens"]:
        per_epoch = min(per_epoch, max(1, round(settings["tokens"] / (tokens / len(windows)))))
    steps = -(-per_epoch // batching.batch_size)
    model.compile(
        optimizer=keras.optimizers.Adam(settings["learning_rate"], clipnorm=1.0),
        loss={
            d: keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            for d in batching.directions
        },
    )
    tracker = _EpochTracker(model, heldout, batching, log)
    model.fit(
        _dataset(windows, per_epoch, batching, rng, steps),
        epochs=settings["epochs"],
        shuffle=False,  # the batches are drawn at random already
        verbose=0,
        callbacks=[EpochProgress(settings["epochs"], steps, per_epoch, log), tracker],
    )
    return {
        "windows": len(windows),
        "tokens": tokens,
        "windows_per_epoch": per_epoch,
        "tokens_per_epoch": round(per_epoch * tokens / len(windows)),
        "seconds_per_epoch": tracker.seconds,
        "heldout_windows": len(heldout),
        "heldout_tokens": sum(len(w) for w in heldout),
        "perplexity": tracker.perplexity,
    }


def _dataset(windows, per_epoch, batching: LMBatching, rng, steps: int) -> tf.data.Dataset:
    """A fresh random draw of windows every epoch, batched by length."""
    names = batching.directions
    matrix = tf.TensorSpec((None, None), tf.int32)
    spec = (
        (matrix, matrix),
        {n: matrix for n in names},
        {n: tf.TensorSpec((None, None), tf.float32) for n in names},
    )
    dataset = tf.data.Dataset.from_generator(
        lambda: lm_batches(windows, per_epoch, batching, rng), output_signature=spec
    )
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


def perplexity(model: keras.Model, windows: list[np.ndarray], batching: LMBatching) -> dict:
    """exp(mean negative log-likelihood) per direction over every real target of
    ``windows`` (all positions; "other" counted unless masked), and the share of the
    targets that are "other"."""
    nll = dict.fromkeys(batching.directions, 0.0)
    other = count = 0.0
    lengths = np.array([len(w) for w in windows])
    for idx in length_sorted_batches(lengths, EVAL_BATCH):
        batch = pad_batch([windows[i] for i in idx])
        positions = sample_positions(batch.shape, 1.0, None)
        targets = lm_targets(batch, positions, batching.output_vocab, batching.mask_other)
        logits = model((batch, positions), training=False)
        for name in batching.directions:
            classes, weight = targets[name]
            losses = ops.sparse_categorical_crossentropy(classes, logits[name], from_logits=True)
            nll[name] += float(np.sum(ops.convert_to_numpy(losses).astype(np.float64) * weight))
        weight = targets["next"][1]
        count += float(weight.sum())
        other += float(np.sum(weight * (targets["next"][0] == 0)))
    out = {name: float(np.exp(total / max(count, 1.0))) for name, total in nll.items()}
    out["other_share"] = other / max(count, 1.0)
    return out


class _EpochTracker(keras.callbacks.Callback):
    """Seconds of each epoch and the held-out perplexity after it."""

    def __init__(self, model, heldout, batching: LMBatching, log):
        super().__init__()
        self.lm, self.heldout, self.batching, self.log = model, heldout, batching, log
        self.seconds: list[float] = []
        self.perplexity: list[dict] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.monotonic() - self.started, 1))
        if self.heldout:
            result = perplexity(self.lm, self.heldout, self.batching)
            self.perplexity.append({k: round(v, 4) for k, v in result.items()})
            shown = ", ".join(f"{k} {v:.2f}" for k, v in result.items() if k != "other_share")
            self.log(f"pretrain epoch {epoch + 1}: held-out perplexity {shown}")
