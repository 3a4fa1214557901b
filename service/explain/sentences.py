"""Sentence boundaries with offsets into the text exactly as sent.

``sentencex`` (Wikimedia's rule-based segmenter, a Rust extension) finds them: it keeps
abbreviations ("U.S.", "p.m.", "e.g."), decimals ("3.5") and quoted questions together,
and a text without punctuation is one sentence. Three things are ours:

- IMDB's ``<br />`` (the tokenizer's own pattern) is replaced by as many newlines as it
  has characters before splitting, so that a line break ends a sentence and every offset
  still points into the original text;
- each span is trimmed of whitespace (and of those masked breaks), and empty spans and
  paragraph-break segments are dropped;
- a span that ends with a title ("Mr.", "Dr.", "Prof."; sentencex splits "I met Dr. Who"
  after it) is joined to the next one on the same line.

Offsets are Python ``str`` indices, i.e. Unicode code points: ``text[start:end]`` is the
sentence as sent (sentencex counts characters, not bytes; tested on non-ASCII text).
"""

from __future__ import annotations

import re

from sentencex import get_sentence_boundaries

from sentiment_core.tokenizer import BREAK_PATTERN

_BREAK = re.compile(BREAK_PATTERN)
LANGUAGE = "en"  # the committed models read English reviews
# Titles before a name; not "St." or "Jr.", which can end a sentence ("on Main St.").
TITLES = ("mr", "mrs", "ms", "mx", "dr", "prof", "rev", "hon", "capt", "lt", "col", "sgt", "gen",
          "messrs", "mme", "mlle")  # fmt: skip
_TITLE_END = re.compile(rf"(?:^|[^\w.])(?:{'|'.join(TITLES)})\.$", re.IGNORECASE)
# A title, its dot, the character before it and a final newline ("$" matches before one)
# are a span's last characters: searching just those keeps joining linear in the text (a
# run of joined spans was rescanned whole: docs/security.md).
_TITLE_TAIL = max(map(len, TITLES)) + 3


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text``, in order, never empty or overlapping."""
    masked = _BREAK.sub(lambda m: "\n" * len(m.group()), text) if "<" in text else text
    spans = []
    for boundary in get_sentence_boundaries(LANGUAGE, masked):
        if boundary["is_paragraph_break"]:
            continue
        start, end = _trimmed(masked, boundary["start_index"], boundary["end_index"])
        if start < end:
            spans.append((start, end))
    if not spans:  # no sentence found (whitespace and markup only): the text as one
        start, end = _trimmed(masked, 0, len(text))
        spans = [(start, end)] if start < end else []
    return _joined_after_titles(masked, spans)


def _joined_after_titles(masked: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """sentencex ends a sentence after a title when a common word follows it ("I met Dr.
    | Who yesterday."); a title never ends one, so such a span joins the next on its line."""
    joined: list[tuple[int, int]] = []
    for start, end in spans:
        if joined and _ends_with_title(masked, *joined[-1], start):
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return joined


def _ends_with_title(masked: str, start: int, end: int, next_start: int) -> bool:
    tail = masked[max(start, end - _TITLE_TAIL) : end]
    return "\n" not in masked[end:next_start] and bool(_TITLE_END.search(tail))


def _trimmed(masked: str, start: int, end: int) -> tuple[int, int]:
    while start < end and masked[start].isspace():
        start += 1
    while end > start and masked[end - 1].isspace():
        end -= 1
    return start, end
