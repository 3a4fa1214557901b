"""Temperature scaling (Guo et al. 2017): one scalar T, fit on the validation rows, divides
the output layer's logits.

T is folded into the output layer's weights (kernel / T, bias / T), so the exported graph
has the same nodes, ONNX parity holds as before, and no label changes: a logit keeps its
sign (threshold 0.5) and its rank (argmax). Only the probabilities move. Early stopping
already used the same validation rows; one more scalar fit on them adds no selection on
the test splits, which are scored after this.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from scipy.optimize import minimize_scalar

from sentiment_core.batching import score_in_length_order
from sentiment_core.encoder import pad_batch
from training.evaluate import expected_calibration_error
from training.fit import Rows
from training.model import ModelConfig, layers_of

METHODS = ("none", "temperature")
LOG_T_BOUNDS = (-3.0, 3.0)  # T from 0.05 to 20: far beyond any fit seen here


def logits_of(model: keras.Model, cfg: ModelConfig, rows: Rows) -> np.ndarray:
    """The output layer's pre-activation values for every row, in row order."""
    layer = layers_of(model, cfg)["output"]
    features = keras.Model(model.inputs, layer.input)
    kernel, bias = layer.get_weights()

    def logits(batch: list) -> np.ndarray:
        return np.asarray(features.predict_on_batch(pad_batch(batch))) @ kernel + bias

    return score_in_length_order(logits, rows.ids).astype(np.float64)


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """A probability per label (two columns for a sigmoid head)."""
    z = logits / temperature
    if z.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.stack([1.0 - positive, positive], axis=1)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    p = probabilities(logits, temperature)[np.arange(len(y)), y]
    return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())


def ece(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    p = probabilities(logits, temperature)
    predicted = p.argmax(axis=1)
    return expected_calibration_error(predicted == y, p.max(axis=1), p.shape[1])


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T that minimises the validation rows' negative log-likelihood (unweighted: the
    probabilities are calibrated for the rows as they come, not for the loss weights)."""
    found = minimize_scalar(
        lambda log_t: nll(logits, y, float(np.exp(log_t))), bounds=LOG_T_BOUNDS, method="bounded"
    )
    return float(np.exp(found.x))


def calibrate(
    model: keras.Model,
    cfg: ModelConfig,
    validation: Rows,
    method: str,
    log: Callable[[str], None],
) -> dict:
    """Fit and fold the temperature into ``model``; the report for metrics.json."""
    if method == "none":
        return {"method": "none"}
    if method != "temperature":
        raise ValueError(f"unknown calibration {method!r}; expected one of {METHODS}")
    logits = logits_of(model, cfg, validation)
    y = validation.y
    temperature = fit_temperature(logits, y)
    layer = layers_of(model, cfg)["output"]
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel / temperature, bias / temperature])
    report = {
        "method": "temperature",
        "temperature": round(temperature, 4),
        # (+ 0.0: a loss that rounds to zero from below is 0.0, not -0.0)
        "val_nll": [round(nll(logits, y, t), 4) + 0.0 for t in (1.0, temperature)],
        "val_ece": [round(ece(logits, y, t), 4) + 0.0 for t in (1.0, temperature)],
    }
    log(
        f"calibration: temperature {temperature:.3f}; validation NLL "
        f"{report['val_nll'][0]:.4f} → {report['val_nll'][1]:.4f}, ECE "
        f"{report['val_ece'][0]:.4f} → {report['val_ece'][1]:.4f}"
    )
    return report
