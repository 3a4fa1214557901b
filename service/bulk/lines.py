"""Text input (CSV, TSV, JSON Lines) read line by line with every line bounded, so that
no line or field is ever held whole when it is far over the text limit.

A line over ``line_limit(max_chars)`` characters (4 x ``SENTIMENT_MAX_TEXT_CHARS``, at
least 1 Mi: room for the other columns and doubled quotes) is read through in pieces of
that size and dropped: its row becomes a bad row. The CSV reader's field limit is the
same, so a quote never closed stops the run after that many characters, not at the end
of the file. A file in UTF-16 or UTF-32 (by its byte-order mark) is refused: UTF-8 only.
"""

from __future__ import annotations

import bisect
import codecs
from collections.abc import Iterator
from typing import IO

from service.bulk.formats import UsageError

MIN_LINE_LIMIT = 1 << 20
_WIDE_BOMS = [  # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
]


def line_limit(max_chars: int) -> int:
    """The most characters a line (or a CSV field) may have before it is not read."""
    return max(4 * max_chars, MIN_LINE_LIMIT)


def check_utf8(head: bytes, name: str) -> None:
    """``head``: the input's first bytes. A UTF-16/32 file is refused with what to do."""
    for bom, encoding in _WIDE_BOMS:
        if head.startswith(bom):
            raise UsageError(
                f"{name} is {encoding} (it starts with a {encoding} byte-order mark); "
                f"it must be UTF-8: convert it first, e.g. iconv -f {encoding} -t UTF-8"
            )
    if b"\x00" in head:  # text holds no NUL: each ASCII character of UTF-16/32 has some
        raise UsageError(
            f"{name} looks like UTF-16 or UTF-32 without a byte-order mark (NUL bytes at its "
            "start); it must be UTF-8: convert it first, e.g. iconv -f UTF-16LE -t UTF-8"
        )


class Overlong(str):
    """What stands for a dropped line: a blank line (CSV: with a quote if the dropped
    line had an odd number of them, so that quoting goes on as in the file)."""


class BoundedLines:
    """``stream``'s lines, none over ``limit`` characters; ``overlong``: the numbers
    (from 1, ascending) of the lines dropped for being longer."""

    def __init__(self, stream: IO[str], limit: int):
        self.stream = stream
        self.limit = limit
        self.overlong: list[int] = []

    def __iter__(self) -> Iterator[str]:
        readline, limit = self.stream.readline, self.limit
        number = 0
        while line := readline(limit + 1):
            number += 1
            if len(line) > limit:
                self.overlong.append(number)
                line = Overlong('"\n' if self._drop_rest(line) % 2 else "\n")
            yield line

    def _drop_rest(self, piece: str) -> int:
        """Read to the end of the line ``piece`` begins; its count of quotes."""
        quotes = piece.count('"')
        while piece and not _ends_line(piece, self.limit + 1):
            piece = self.stream.readline(self.limit + 1)
            quotes += piece.count('"')
        return quotes

    def covers(self, start: int, end: int) -> int | None:
        """A dropped line among lines ``start`` to ``end``, or None."""
        at = bisect.bisect_left(self.overlong, start)
        return self.overlong[at] if at < len(self.overlong) and self.overlong[at] <= end else None


def too_long(line: int, limit: int) -> str:
    """A dropped line's bad row: why it was not read."""
    return (
        f"line {line} has more than {limit:,} characters (4 x SENTIMENT_MAX_TEXT_CHARS, "
        "at least 1 Mi): not read"
    )


def _ends_line(piece: str, size: int) -> bool:
    # A lone "\r" ends a line only where readline stopped short of its size limit
    # (at the limit, it may be the first half of "\r\n").
    return piece.endswith("\n") or (piece.endswith("\r") and len(piece) < size)
