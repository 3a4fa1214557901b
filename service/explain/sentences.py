"""Sentence boundaries with offsets into the text exactly as sent.

``sentencex`` (Wikimedia's rule-based segmenter, a Rust extension) finds them: it keeps
abbreviations ("Dr.", "U.S.", "p.m.", "e.g."), decimals ("3.5") and quoted questions
together, and a text without punctuation is one sentence. Two things are ours:

- IMDB's ``<br />`` (the tokenizer's own pattern) is replaced by as many newlines as it
  has characters before splitting, so that a line break ends a sentence and every offset
  still points into the original text;
- each span is trimmed of whitespace (and of those masked breaks), and empty spans and
  paragraph-break segments are dropped.

Offsets are Python ``str`` indices, i.e. Unicode code points: ``text[start:end]`` is the
sentence as sent (sentencex counts characters, not bytes; tested on non-ASCII text).
"""

from __future__ import annotations

import re

from sentencex import get_sentence_boundaries

from sentiment_core.tokenizer import BREAK_PATTERN

_BREAK = re.compile(BREAK_PATTERN)
LANGUAGE = "en"  # the committed models read English reviews


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
    return spans


def _trimmed(masked: str, start: int, end: int) -> tuple[int, int]:
    while start < end and masked[start].isspace():
        start += 1
    while end > start and masked[end - 1].isspace():
        end -= 1
    return start, end
