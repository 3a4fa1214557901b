"""Temperature scaling: the fit finds a known temperature, folding it into the output layer
changes probabilities exactly as the fit says and never a label."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras

from training.calibrate import calibrate, ece, fit_temperature, logits_of, nll, probabilities
from training.fit import Rows
from training.model import ModelConfig, build_model


def overconfident(n: int, temperature: float, classes: int, seed: int = 0):
    """Logits whose labels were drawn from softmax(logits / temperature): a model that
    is ``temperature`` times too sure of itself."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, (n, 1 if classes == 2 else classes))
    p = probabilities(logits, temperature)
    y = np.array([rng.choice(p.shape[1], p=row) for row in p])
    return logits, y


@pytest.mark.parametrize("classes", [2, 3])
def test_the_fit_recovers_the_temperature_the_labels_were_drawn_at(classes):
    logits, y = overconfident(20_000, 2.0, classes)
    temperature = fit_temperature(logits, y)
    assert temperature == pytest.approx(2.0, rel=0.08)
    assert nll(logits, y, temperature) < nll(logits, y, 1.0)
    assert ece(logits, y, temperature) < ece(logits, y, 1.0) / 3


def test_a_calibrated_model_is_left_close_to_one():
    logits, y = overconfident(20_000, 1.0, 3, seed=1)
    assert fit_temperature(logits, y) == pytest.approx(1.0, abs=0.08)


def tiny_rows(n: int, classes: int, seed: int = 0) -> Rows:
    rng = np.random.default_rng(seed)
    ids = [rng.integers(1, 50, rng.integers(3, 12)).tolist() for _ in range(n)]
    return Rows([], ids, rng.integers(0, classes, n))


@pytest.mark.parametrize("outputs", [1, 3])
def test_folding_moves_probabilities_as_fitted_and_keeps_every_label(outputs):
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(50, 8, 4, pooling="last+mean+max", outputs=outputs)
    model = build_model(cfg)
    layer = model.layers[-1]
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel * 40.0, bias + 0.3])  # far too sure of itself
    rows = tiny_rows(300, 2 if outputs == 1 else outputs)
    before = logits_of(model, cfg, rows)

    report = calibrate(model, cfg, rows, "temperature", lambda _: None)

    temperature = report["temperature"]
    assert temperature > 1.5 and report["val_nll"][1] < report["val_nll"][0]
    after = logits_of(model, cfg, rows)
    np.testing.assert_allclose(after, before / temperature, rtol=1e-3, atol=1e-5)
    if outputs == 1:  # the threshold 0.5 is the logit 0
        assert (np.sign(after) == np.sign(before)).all()
    np.testing.assert_array_equal(after.argmax(axis=1), before.argmax(axis=1))
    served = np.asarray(model.predict(np.array([rows.ids[0]]), verbose=0))
    expected = probabilities(after[:1])
    np.testing.assert_allclose(
        served[0], expected[0, 1:] if outputs == 1 else expected[0], atol=1e-5
    )


def test_none_leaves_the_model_alone():
    cfg = ModelConfig(50, 8, 4, outputs=3)
    model = build_model(cfg)
    weights = [w.copy() for w in model.get_weights()]
    assert calibrate(model, cfg, tiny_rows(10, 3), "none", print) == {"method": "none"}
    for a, b in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(a, b)
