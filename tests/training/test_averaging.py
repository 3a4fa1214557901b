"""Weight averaging: what is validated and kept is the bias-corrected moving average of
the steps' weights, and each epoch trains on from the raw weights."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras

from training.averaging import WeightAverage
from training.model import ModelConfig, build_model

CFG = ModelConfig(40, 6, 4, pooling="last+mean+max", outputs=3)
DECAY = 0.8


class Recorder(keras.callbacks.Callback):
    """The raw weights after every step and at the start of every epoch."""

    def __init__(self, model: keras.Model):
        super().__init__()
        self.variables = model.trainable_weights
        self.steps: list[list[np.ndarray]] = []
        self.epoch_starts: list[list[np.ndarray]] = []

    def _now(self) -> list[np.ndarray]:
        return [v.numpy().copy() for v in self.variables]

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(self._now())

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_starts.append(self._now())


def expected_average(steps: list[list[np.ndarray]]) -> list[np.ndarray]:
    t = len(steps)
    weights = [(1 - DECAY) * DECAY ** (t - 1 - k) for k in range(t)]
    return [
        sum(w * step[i] for w, step in zip(weights, steps, strict=True)) / (1 - DECAY**t)
        for i in range(len(steps[0]))
    ]


def test_each_epoch_validates_the_average_and_trains_on_from_the_raw_weights():
    keras.utils.set_random_seed(0)
    model = build_model(CFG)
    model.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    rng = np.random.default_rng(0)
    x = rng.integers(1, 40, (32, 7)).astype("int32")
    y = rng.integers(0, 3, 32)
    validated: list[tuple[list[np.ndarray], dict]] = []

    def validate() -> dict:
        figures = model.evaluate(x[:8], y[:8], verbose=0, return_dict=True)
        validated.append(([v.numpy().copy() for v in model.trainable_weights], figures))
        return figures

    recorder = Recorder(model)
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        shuffle=False,
        verbose=0,
        validation_data=(x[:8], y[:8]),
        callbacks=[WeightAverage(model, DECAY, validate), recorder],
    ).history

    steps_per_epoch = 4
    assert len(recorder.steps) == 2 * steps_per_epoch and len(validated) == 2
    for epoch, (held, figures) in enumerate(validated):
        average = expected_average(recorder.steps[: (epoch + 1) * steps_per_epoch])
        for got, want in zip(held, average, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        # The history (what early stopping and the best epoch read) is the average's.
        assert history["val_loss"][epoch] == pytest.approx(figures["loss"])
        assert history["val_accuracy"][epoch] == pytest.approx(figures["accuracy"])
    assert len(history["raw_val_loss"]) == 2
    # The average differs from the raw weights, and epoch 2 started from the raw ones.
    assert not np.allclose(validated[0][0][0], recorder.steps[steps_per_epoch - 1][0])
    for got, want in zip(
        recorder.epoch_starts[1], recorder.steps[steps_per_epoch - 1], strict=True
    ):
        np.testing.assert_array_equal(got, want)
    # The model is left holding the last epoch's average (early stopping may restore another).
    for got, want in zip(model.trainable_weights, validated[-1][0], strict=True):
        np.testing.assert_array_equal(got.numpy(), want)


def test_a_decay_outside_zero_to_one_is_refused():
    model = build_model(CFG)
    for decay in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="decay"):
            WeightAverage(model, decay, dict)
