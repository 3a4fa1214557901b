"""Weight averaging (``--average-weights DECAY``): the model kept and validated is an
exponential moving average of its weights over the training steps (Polyak averaging).

Training steps on the raw weights as always. The average is updated after every step
and is what each epoch's validation scores, so early stopping, the best epoch and the
weights restored at the end are all the average's. The raw weights are put back before
the next epoch trains on. The average starts at zero and is divided by ``1 - decay**t``
(as Adam does), so its first steps are not pulled towards the random initial weights.
It changes only which weights are kept: the graph, the export and the serving cost are
the same.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np


class WeightAverage(keras.callbacks.Callback):
    """Keeps the average of ``model``'s trainable weights; validates it every epoch.

    ``validate``: the validation figures (``loss``, ``accuracy``) of the weights the model
    holds when it is called. Put this callback before early stopping and the progress line,
    which then see the average's figures; the raw weights' figures stay in the logs as
    ``raw_val_loss`` and ``raw_val_accuracy``.
    """

    def __init__(self, model: keras.Model, decay: float, validate: Callable[[], dict]):
        super().__init__()
        if not 0 < decay < 1:
            raise ValueError("the averaging decay must be in (0, 1)")
        self._variables = model.trainable_weights
        self._decay = decay
        self._validate = validate
        self._sums = [np.zeros(v.shape, dtype=np.float32) for v in self._variables]
        self._steps = 0
        self._raw: list[np.ndarray] | None = None

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        for total, variable in zip(self._sums, self._variables, strict=True):
            total += (1.0 - self._decay) * (variable.numpy() - total)  # decay·total + (1-decay)·w
        self._steps += 1

    def average(self) -> list[np.ndarray]:
        """The bias-corrected average of each trainable weight."""
        correction = np.float32(1.0 - self._decay**self._steps)
        return [total / correction for total in self._sums]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._raw = [v.numpy() for v in self._variables]
        self._assign(self.average())
        figures = self._validate()
        if logs is not None:
            for name in ("loss", "accuracy"):
                if f"val_{name}" in logs:
                    logs[f"raw_val_{name}"] = logs[f"val_{name}"]
                logs[f"val_{name}"] = float(figures[name])

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._raw is not None:  # training goes on from the raw weights
            self._assign(self._raw)
            self._raw = None

    def _assign(self, values: list[np.ndarray]) -> None:
        for variable, value in zip(self._variables, values, strict=True):
            variable.assign(value)
