"""Encoded rows, their weights, and the Keras fit: length-bucketed batches, AdamW with a
decaying learning rate, early stopping on the validation loss, a progress bar per epoch."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from sentiment_core.batching import length_sorted_batches
from sentiment_core.encoder import TextEncoder, pad_batch
from training.adversarial import AdversarialTrainer
from training.averaging import WeightAverage
from training.config import Config
from training.data import length_bucketed_batches
from training.finetune import make_optimizer, set_initial_weights
from training.model import ModelConfig, build_model
from training.progress import EpochProgress
from training.sources import Example


@dataclass
class Rows:
    """A split's examples, encoded: token ids, label indices, loss weights (None: all 1)."""

    examples: list[Example]
    ids: list[Sequence[int]]
    y: np.ndarray
    weights: np.ndarray | None = None
    targets: np.ndarray | None = None  # (n, labels) soft targets (a teacher's), else None

    def without_source(self, source: str) -> Rows:
        keep = np.array([i for i, e in enumerate(self.examples) if e.source != source], int)
        weights = None if self.weights is None else self.weights[keep]
        targets = None if self.targets is None else self.targets[keep]
        examples = [self.examples[i] for i in keep]
        return Rows(examples, [self.ids[i] for i in keep], self.y[keep], weights, targets)

    def of_source(self, source: str) -> np.ndarray:
        return np.array([i for i, e in enumerate(self.examples) if e.source == source], dtype=int)


def encode_rows(
    examples: list[Example],
    encoder: TextEncoder,
    labels: Sequence[str],
    weight_of: Callable[[Example], float] | None = None,
) -> Rows:
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[e.label] for e in examples], dtype=np.int64)
    weights = None
    if weight_of is not None:
        weights = np.array([weight_of(e) for e in examples], dtype=np.float32)
        weights = None if np.all(weights == 1.0) else weights
    return Rows(examples, encoder.encode_ids([e.text for e in examples]), y, weights)


def fit_model(
    model_cfg: ModelConfig,
    cfg: Config,
    train: Rows,
    validation: Rows,
    rng: np.random.Generator,
    log: Callable[[str], None],
    initial_weights: dict[str, list[np.ndarray]] | None = None,
):
    """Train; returns (the model with its best epoch's weights, history, fit seconds).

    ``initial_weights``: layer name → arrays (a pretrained embedding and recurrent layer,
    or word vectors), set before training; the other layers start from their random init.
    """
    model = build_model(model_cfg)
    set_initial_weights(model, initial_weights or {}, cfg.finetune_head)
    steps = -(-len(train.ids) // cfg.batch_size)
    learning_rate = keras.optimizers.schedules.ExponentialDecay(
        cfg.learning_rate, decay_steps=steps, decay_rate=cfg.lr_decay
    )
    optimizer, finetune_callbacks = make_optimizer(model, cfg, learning_rate, log)
    trainer = model
    if cfg.adversarial:
        trainer = AdversarialTrainer(model, model_cfg, cfg.adversarial)
    soft = train.targets is not None  # a teacher's probabilities: every target a distribution
    trainer.compile(optimizer=optimizer, loss=_loss(model_cfg.outputs, soft), metrics=["accuracy"])
    validation_data = _dataset(validation, 256, rng, model_cfg.outputs, shuffle=False, soft=soft)
    averaging = []
    if cfg.average_weights:
        # Before early stopping and the progress line: both see the average's figures.
        averaging = [
            WeightAverage(
                model,
                cfg.average_weights,
                lambda: trainer.evaluate(validation_data, verbose=0, return_dict=True),
            )
        ]
    started = time.monotonic()
    history = trainer.fit(
        _dataset(train, cfg.batch_size, rng, model_cfg.outputs, shuffle=True, soft=soft),
        validation_data=validation_data,
        epochs=cfg.epochs,
        shuffle=False,  # our batches are shuffled already (Keras would only warn)
        verbose=0,  # the progress callback prints instead
        callbacks=[
            *averaging,
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=cfg.patience, restore_best_weights=True
            ),
            EpochProgress(cfg.epochs, steps, len(train.ids), log),
            *finetune_callbacks,
        ],
    ).history
    return model, history, time.monotonic() - started


def _loss(outputs: int, soft: bool) -> str:
    if outputs == 1:
        return "binary_crossentropy"  # takes P(positive) targets as they are
    return "categorical_crossentropy" if soft else "sparse_categorical_crossentropy"


def _targets(rows: Rows, outputs: int, soft: bool) -> np.ndarray:
    """Label indices; with ``soft``, distributions (a row without a teacher's: one-hot, whose
    cross-entropy is the sparse one's, so validation losses compare across runs)."""
    if not soft:
        return rows.y.astype(np.float32 if outputs == 1 else np.int64)
    k = max(outputs, 2)
    targets = rows.targets if rows.targets is not None else np.eye(k)[rows.y]
    return (targets[:, 1] if outputs == 1 else targets).astype(np.float32)


def _dataset(
    rows: Rows, batch_size: int, rng, outputs: int, shuffle: bool, soft: bool = False
) -> tf.data.Dataset:
    """Batches of similar lengths, padded per batch; (ids, labels[, weights])."""
    lengths = np.array([len(s) for s in rows.ids])
    labels = _targets(rows, outputs, soft)
    n_batches = -(-len(rows.ids) // batch_size)
    spec = [
        tf.TensorSpec((None, None), tf.int32),
        tf.TensorSpec((None, *labels.shape[1:]), tf.as_dtype(labels.dtype)),
    ]
    if rows.weights is not None:
        spec.append(tf.TensorSpec((None,), tf.float32))

    def batches():
        order = (
            length_bucketed_batches(lengths, batch_size, rng)
            if shuffle
            else length_sorted_batches(lengths, batch_size)
        )
        for idx in order:
            batch = (pad_batch([rows.ids[i] for i in idx]), labels[idx])
            yield batch if rows.weights is None else (*batch, rows.weights[idx])

    dataset = tf.data.Dataset.from_generator(batches, output_signature=tuple(spec))
    # A known number of batches: Keras then sizes its epochs instead of running out of data.
    return dataset.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)
