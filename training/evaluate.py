"""Metrics of a classifier's probabilities: binary (sigmoid scores) and N-class.

``label_metrics`` is what the job reports per source and pooled: accuracy, macro-F1,
per-class recall, average recall (SemEval's measure), confusion matrix, calibration (ECE);
for a model with more labels than a source's (IMDB scored by a three-class model), the
polar figures too. Binary models keep the figures they always had (ROC-AUC, F1, tn/fp/fn/tp).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, recall_score, roc_auc_score

POLAR = ("negative", "positive")


def expected_calibration_error(
    correct: np.ndarray, confidence: np.ndarray, n_labels: int = 2, bins: int = 15
) -> float:
    """ECE over equal-width bins of the predicted label's probability, from 1/K to 1."""
    edges = np.linspace(1.0 / n_labels, 1.0, bins + 1)
    correct = correct.astype(float)
    ece = 0.0
    for lo, hi in pairwise(edges):
        in_bin = (confidence >= lo) & ((confidence < hi) if hi < 1.0 else (confidence <= hi))
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def classification_metrics(labels, scores, threshold: float = 0.5) -> dict:
    """A binary model's figures from its scores, P(positive)."""
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=np.float64)
    predicted = (scores >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    confidence = np.where(predicted == 1, scores, 1.0 - scores)
    return {
        "n": len(labels),
        "accuracy": float((predicted == labels).mean()),
        "roc_auc": float(roc_auc_score(labels, scores)) if len(set(labels)) == 2 else None,
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "ece": expected_calibration_error(predicted == labels, confidence),
    }


def label_metrics(
    truth: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray, labels: Sequence[str]
) -> dict:
    """Figures for label indices ``truth`` against the model's ``predicted`` indices.

    Macro-F1 and average recall are over the labels the rows hold (a polar test set has
    no neutral rows, so a neutral class would only add a zero).
    """
    truth, predicted = np.asarray(truth, dtype=int), np.asarray(predicted, dtype=int)
    present = sorted(set(truth.tolist()))
    recall = recall_score(truth, predicted, labels=present, average=None, zero_division=0)
    confidence = probabilities[np.arange(len(truth)), predicted]
    out = {
        "n": len(truth),
        "accuracy": float(np.mean(truth == predicted)),
        "macro_f1": float(
            f1_score(truth, predicted, labels=present, average="macro", zero_division=0)
        ),
        "recall": {labels[i]: float(r) for i, r in zip(present, recall, strict=True)},
        "average_recall": float(np.mean(recall)),
        "confusion": {
            "labels": list(labels),  # rows: true label, columns: predicted label
            "matrix": confusion_matrix(truth, predicted, labels=range(len(labels))).tolist(),
        },
        "ece": expected_calibration_error(truth == predicted, confidence, len(labels)),
    }
    if len(labels) > 2 and {labels[i] for i in present} <= set(POLAR):
        out.update(_polar(truth, probabilities, predicted, labels))
    return out


def binary_extras(truth: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray) -> dict:
    """The figures binary bundles have always reported (scores = P(labels[1]))."""
    return {
        k: v
        for k, v in classification_metrics(truth, probabilities[:, 1]).items()
        if k in ("roc_auc", "f1", "confusion_matrix")
    }


def _polar(truth, probabilities, predicted, labels) -> dict:
    """A polar-only test set scored by a model that can also say neutral."""
    negative, positive = labels.index("negative"), labels.index("positive")
    polar_choice = np.where(
        probabilities[:, positive] >= probabilities[:, negative], positive, negative
    )
    return {
        # The label must be the right polar class: neutral counts as wrong.
        "polar_accuracy": float(np.mean(predicted == truth)),
        # Only P(positive) against P(negative), as if neutral did not exist.
        "polar_decision_accuracy": float(np.mean(polar_choice == truth)),
        "neutral_rate": float(np.mean((predicted != negative) & (predicted != positive))),
    }
