"""The job's own comparison of the LSTM with its baseline (``training.report``)."""

from __future__ import annotations

from training.report import behind_the_baseline


def test_an_lstm_far_behind_its_baseline_gets_a_warning_naming_the_flags_to_try():
    warning = behind_the_baseline({"accuracy": 0.677}, {"accuracy": 1.0})
    assert warning is not None
    assert "0.677 is 0.323 below the baseline's 1.000" in warning
    assert "--epochs 20 --lr-decay 1.0 --patience 3" in warning


def test_no_warning_within_noise_or_ahead():
    assert behind_the_baseline({"accuracy": 0.566}, {"accuracy": 0.576}) is None
    assert behind_the_baseline({"accuracy": 0.9}, {"accuracy": 0.95}) is None  # 5 points: noise
    assert behind_the_baseline({"accuracy": 0.91}, {"accuracy": 0.89}) is None
