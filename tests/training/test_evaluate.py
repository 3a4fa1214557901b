"""Metrics on hand-made predictions, and the baseline on separable text."""

from __future__ import annotations

import numpy as np
import pytest

from training.baseline import train_baseline
from training.evaluate import classification_metrics, label_metrics

LABELS = ["negative", "neutral", "positive"]


def one_hot(predicted: list[int], confidence: float = 0.8) -> np.ndarray:
    probs = np.full((len(predicted), 3), (1 - confidence) / 2)
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


def test_three_class_figures():
    truth = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 2, 2, 0])
    m = label_metrics(truth, one_hot(predicted.tolist()), predicted, LABELS)
    assert m["n"] == 8 and m["accuracy"] == pytest.approx(6 / 8)
    assert m["recall"] == {"negative": 0.5, "neutral": 1.0, "positive": 0.75}
    assert m["average_recall"] == pytest.approx((0.5 + 1.0 + 0.75) / 3)
    assert m["confusion"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 3]]
    assert m["confusion"]["labels"] == LABELS
    # Every prediction at confidence 0.8, right 75% of the time: ECE = |0.75 - 0.8|.
    assert m["ece"] == pytest.approx(0.05)
    assert "polar_accuracy" not in m


def test_a_polar_test_set_scored_by_a_three_class_model():
    truth = np.array([0, 0, 2, 2])
    predicted = np.array([0, 1, 2, 2])  # one neutral answer: wrong for the polar accuracy
    probs = one_hot(predicted.tolist())
    probs[1] = [0.4, 0.45, 0.15]  # but P(negative) > P(positive)
    m = label_metrics(truth, probs, predicted, LABELS)
    assert m["polar_accuracy"] == m["accuracy"] == pytest.approx(0.75)
    assert m["polar_decision_accuracy"] == 1.0 and m["neutral_rate"] == pytest.approx(0.25)
    assert set(m["recall"]) == {"negative", "positive"}  # macro figures over its labels


def test_binary_figures_agree_between_both_paths():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 500)
    scores = np.clip(truth * 0.6 + rng.normal(0.2, 0.25, 500), 0, 1)
    old = classification_metrics(truth, scores)
    probs = np.stack([1 - scores, scores], axis=1)
    new = label_metrics(truth, probs, (scores >= 0.5).astype(int), ["negative", "positive"])
    assert new["accuracy"] == old["accuracy"] and new["ece"] == pytest.approx(old["ece"])
    cm = old["confusion_matrix"]
    assert new["confusion"]["matrix"] == [[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]]


def test_baseline_learns_separable_text_and_reports_all_labels():
    rng = np.random.default_rng(1)
    words = {
        0: ["awful", "bad", "worst"],
        1: ["table", "tuesday", "room"],
        2: ["great", "fine", "best"],
    }

    def make(n):
        labels = rng.integers(0, 3, n)
        texts = [" ".join(rng.choice(words[y], 3)) + " the a" for y in labels]
        return texts, labels

    texts, labels = make(300)
    val_texts, val_labels = make(60)
    baseline = train_baseline(texts, labels, None, val_texts, val_labels, 3)
    probs = baseline.probabilities(["great best fine", "awful worst", "tuesday room"])
    assert probs.shape == (3, 3) and np.argmax(probs, axis=1).tolist() == [2, 0, 1]
    assert baseline.describe()["features"] > 0 and baseline.c in (1.0, 4.0)
