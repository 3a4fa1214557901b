"""Adversarial training: the perturbed step is the plain step plus the loss at the worst
nearby embedding, the model it trains is the plain functional model, and the forward
pass from embeddings is the model's own."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras
import tensorflow as tf

from training.adversarial import AdversarialTrainer
from training.model import ModelConfig, after_embedding, build_model, layers_of

CFG = ModelConfig(40, 6, 4, pooling="last+mean+max", outputs=3)


def batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 40, (8, 7)).astype("int32")
    ids[:3, 4:] = 0  # padded rows: the mask must be honoured from embeddings too
    return ids, rng.integers(0, 3, 8)


def test_the_forward_pass_from_embeddings_is_the_models():
    keras.utils.set_random_seed(0)
    model = build_model(CFG)
    ids, _ = batch()
    embedded = model.get_layer("embedding")(ids)
    again = after_embedding(layers_of(model, CFG), CFG, embedded, ids, tf.not_equal(ids, 0))
    np.testing.assert_allclose(np.asarray(again), model.predict(ids, verbose=0), atol=1e-6)


def one_step(epsilon: float) -> tuple[keras.Model, float]:
    keras.utils.set_random_seed(0)
    model = build_model(CFG)
    trainer = AdversarialTrainer(model, CFG, epsilon) if epsilon else model
    # The trainer's weights are the model's, each once and in order (early stopping
    # restores them through the trainer).
    assert [w.path for w in trainer.weights] == [w.path for w in model.weights]
    trainer.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    ids, y = batch()
    loss = trainer.train_on_batch(ids, y)
    return model, float(loss)


def test_it_trains_the_shared_model_and_reports_the_clean_loss():
    plain, plain_loss = one_step(0.0)
    adversarial, adversarial_loss = one_step(2.0)
    # The reported loss is the clean one, at the same starting weights.
    assert adversarial_loss == pytest.approx(plain_loss, rel=1e-5)
    moved = [
        not np.allclose(a, b)
        for a, b in zip(plain.get_weights(), adversarial.get_weights(), strict=True)
    ]
    assert any(moved)  # the perturbed loss changed the step
    assert len(adversarial.get_weights()) == len(plain.get_weights())


def test_epsilon_zero_perturbation_doubles_the_plain_gradient():
    # With epsilon 0 the second loss equals the first (CFG has no dropout): the step is the
    # plain step with twice the gradient, so SGD at rate 0.5 moves as plain SGD at 1.0.
    keras.utils.set_random_seed(0)
    model = build_model(CFG)
    trainer = AdversarialTrainer(model, CFG, 0.0)
    trainer.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    keras.utils.set_random_seed(0)
    reference = build_model(CFG)
    reference.compile(optimizer=keras.optimizers.SGD(1.0), loss="sparse_categorical_crossentropy")
    ids, y = batch()
    trainer.train_on_batch(ids, y)
    reference.train_on_batch(ids, y)
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
