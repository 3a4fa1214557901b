"""Adversarial training on the embeddings (Miyato, Dai & Goodfellow 2017, "Adversarial
training methods for semi-supervised text classification").

Each step also trains on the batch with every text's embedded tokens moved by ``epsilon``
(L2 norm over the whole text) in the direction that raises its loss most, as the gradient
says: loss(x) + loss(x + r_adv). Words cannot be perturbed, their embeddings can, and a
model that must keep its answer under such small moves learns smoother, less brittle
features. Two forward and two backward passes per step: about twice the cost of a plain one. Training only: the trained model is the
same graph, so export, parity and serving are unchanged.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from training.model import ModelConfig, after_embedding, layers_of


class AdversarialTrainer(keras.Model):
    """Fits ``model`` (the functional model, whose weights it shares) with adversarial
    steps; validation and prediction are the model's own."""

    def __init__(self, model: keras.Model, cfg: ModelConfig, epsilon: float):
        super().__init__(name="adversarial_trainer")
        self.model = model
        # Keras tracks each layer once, however many attributes reach it (tested).
        self.embedding = model.get_layer("embedding")
        self.layers_after_embedding = layers_of(model, cfg)
        self._cfg = cfg
        self.epsilon = float(epsilon)

    def call(self, ids, training=None):
        return self.model(ids, training=training)

    def _forward(self, embedded, ids, mask):
        return after_embedding(
            self.layers_after_embedding, self._cfg, embedded, ids, mask, training=True
        )

    def train_step(self, data):
        ids, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        mask = tf.not_equal(ids, 0)
        weights = self.trainable_weights

        def loss_of(y_pred):
            return self.compute_loss(x=ids, y=y, y_pred=y_pred, sample_weight=sample_weight)

        # Two forward and two backward passes: the clean pass gives the weights' gradient
        # and the direction at once; the perturbed pass adds its own weights' gradient.
        with tf.GradientTape() as tape:
            embedded = self.embedding(ids)
            y_pred = self._forward(embedded, ids, mask)
            loss = loss_of(y_pred)
        direction, *clean = tape.gradient(loss, [embedded, *weights])
        norm = tf.sqrt(tf.reduce_sum(tf.square(direction), axis=[1, 2], keepdims=True))
        shift = self.epsilon * direction / (norm + 1e-12)
        with tf.GradientTape() as tape:
            adversarial_loss = loss_of(self._forward(self.embedding(ids) + shift, ids, mask))
        perturbed = tape.gradient(adversarial_loss, weights)
        gradients = [_add(a, b) for a, b in zip(clean, perturbed, strict=True)]
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(ids)[0])  # the clean loss
        self.optimizer.apply_gradients(zip(gradients, weights, strict=True))
        return self.compute_metrics(ids, y, y_pred, sample_weight=sample_weight)


def _add(a, b):
    """The sum of two gradients; the embedding's are row slices, kept sparse."""
    if isinstance(a, tf.IndexedSlices) and isinstance(b, tf.IndexedSlices):
        return tf.IndexedSlices(
            tf.concat([a.values, b.values], 0), tf.concat([a.indices, b.indices], 0), a.dense_shape
        )
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)
