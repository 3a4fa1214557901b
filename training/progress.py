"""What the job prints while it trains: one progress bar per epoch on a terminal (plain
lines every few seconds otherwise), one summary line per epoch, and nothing alarming.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

import keras

PLAIN_EVERY_S = 30.0  # without a terminal: a progress line this often, for logs


class EpochProgress(keras.callbacks.Callback):
    """Keras' own output off (``verbose=0``); this draws the bar and the epoch lines."""

    def __init__(
        self,
        epochs: int,
        steps: int,
        texts: int,
        log: Callable[[str], None],
        stream: TextIO | None = None,
    ):
        super().__init__()
        self.epochs, self.steps, self.texts, self.log = epochs, steps, texts, log
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.started = self.last_shown = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch = epoch + 1
        self.started = self.last_shown = time.monotonic()

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        now = time.monotonic()
        if now - self.last_shown < (0.2 if self.terminal else PLAIN_EVERY_S):
            return
        self.last_shown = now
        done = batch + 1
        elapsed = now - self.started
        rate = done / elapsed * self.texts / self.steps
        eta = (self.steps - done) * elapsed / done
        line = (
            f"epoch {self.epoch}/{self.epochs} {done}/{self.steps} · loss {logs['loss']:.4f} · "
            f"{rate:,.0f} texts/s · ETA {_clock(eta)}"
        )
        if self.terminal:
            width = 24
            filled = round(width * done / self.steps)
            bar = "█" * filled + "·" * (width - filled)
            self.stream.write(f"\r\x1b[2K{bar} {line}")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self.terminal:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
        shown = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items() if k != "learning_rate")
        self.log(
            f"epoch {epoch + 1}/{self.epochs}: {shown} ({_clock(time.monotonic() - self.started)})"
        )


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}:{seconds:02d}"


@contextlib.contextmanager
def quiet_quantizer() -> Iterator[None]:
    """onnxruntime's quantizer logs a warning to pre-process the graph first (shape
    inference for static quantization); dynamic weight quantization has no use for it."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
