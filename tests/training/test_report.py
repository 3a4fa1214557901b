"""The job's own comparison of the LSTM with its baseline (``training.report``)."""

from __future__ import annotations

import json
from pathlib import Path

from training.card import model_card
from training.report import behind_the_baseline

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "sentiment-lstm" / "n2"


def test_an_lstm_far_behind_its_baseline_gets_a_warning_naming_the_flags_to_try():
    warning = behind_the_baseline({"accuracy": 0.677}, {"accuracy": 1.0})
    assert warning is not None
    assert "0.677 is 0.323 below the baseline's 1.000" in warning
    assert "--epochs 20 --lr-decay 1.0 --patience 3" in warning


def test_no_warning_within_noise_or_ahead():
    assert behind_the_baseline({"accuracy": 0.566}, {"accuracy": 0.576}) is None
    assert behind_the_baseline({"accuracy": 0.9}, {"accuracy": 0.95}) is None  # 5 points: noise
    assert behind_the_baseline({"accuracy": 0.91}, {"accuracy": 0.89}) is None


def test_the_model_card_shows_the_jobs_warnings():
    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    metrics = json.loads((BUNDLE / "metrics.json").read_text())
    assert "**Warning:**" not in model_card(manifest, metrics)
    warning = behind_the_baseline({"accuracy": 0.6}, {"accuracy": 0.9})
    card = model_card(manifest, {**metrics, "warnings": [warning]})
    assert f"**Warning:** {warning}" in card
