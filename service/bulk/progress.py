"""The progress bar (only when stderr is a terminal) and the closing summary line."""

from __future__ import annotations

import time
from typing import IO

_REDRAW_S = 0.2
_WIDTH = 24


class Progress:
    """Rows done, rows/s and, when the input's size is known, a bar and the ETA.

    ``total`` and ``position`` are in the input's own unit (bytes read, or rows for
    Parquet): the fraction done is their ratio.
    """

    def __init__(self, stream: IO[str], total: int | None, enabled: bool | None = None):
        self.stream = stream
        self.total = total
        self.enabled = stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._drawn = 0.0
        self.rows = 0

    def update(self, rows: int, position: int) -> None:
        self.rows = rows
        now = time.monotonic()
        if not self.enabled or now - self._drawn < _REDRAW_S:
            return
        self._drawn = now
        self.stream.write("\r" + self.line(rows, position, now - self.started) + "\x1b[K")
        self.stream.flush()

    def line(self, rows: int, position: int, elapsed: float) -> str:
        rate = rows / elapsed if elapsed > 0 else 0.0
        text = f"{rows:,} rows  {rate:,.0f} rows/s"
        if self.total and position:
            done = min(position / self.total, 1.0)
            filled = round(done * _WIDTH)
            eta = elapsed * (1 - done) / done if done > 0 else 0
            bar = "#" * filled + "-" * (_WIDTH - filled)
            text = f"[{bar}] {done:4.0%}  {text}  ETA {_clock(eta)}"
        return text

    def finish(self, summary: str) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
        self.stream.write(summary + "\n")
        self.stream.flush()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
