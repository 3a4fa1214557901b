"""The training output: a bar per epoch on a terminal, plain lines otherwise, one summary."""

from __future__ import annotations

import io

import pytest

pytest.importorskip("keras")

from training import progress
from training.progress import EpochProgress, plural


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_epoch(stream) -> list[str]:
    lines: list[str] = []
    bar = EpochProgress(epochs=3, steps=4, texts=256, log=lines.append, stream=stream)
    bar.on_epoch_begin(0)
    for step in range(4):
        bar.last_shown = -1e9  # draw every step here (normally at most every 0.2 s / 30 s)
        bar.on_train_batch_end(step, {"loss": 0.5 - step / 10})
    bar.on_epoch_end(0, {"loss": 0.25, "accuracy": 0.9, "val_loss": 0.3, "learning_rate": 1e-3})
    return lines


def test_a_terminal_gets_one_redrawn_bar_and_a_summary_line():
    stream = Terminal()
    lines = run_epoch(stream)
    drawn = stream.getvalue()
    assert drawn.count("\r") >= 4 and "\n" not in drawn  # redrawn in place, then cleared
    assert "epoch 1/3 4/4" in drawn and "texts/s" in drawn and "ETA" in drawn
    assert lines == [lines[0]] and lines[0].startswith("epoch 1/3: loss 0.2500, accuracy 0.9000")
    assert "learning_rate" not in lines[0]


def test_without_a_terminal_progress_is_plain_lines():
    stream = io.StringIO()
    run_epoch(stream)
    plain = stream.getvalue().splitlines()
    assert len(plain) == 4 and all("\r" not in line and "ETA" in line for line in plain)
    assert progress.PLAIN_EVERY_S == 30.0


def test_plural():
    assert plural(1, "epoch") == "1 epoch" and plural(2, "epoch") == "2 epochs"
