"""A text's tokens with their offsets into the text as sent.

The Rust ``tokenizers`` pipeline (the bundle's reference encoder) keeps an alignment from
its normalised string back to the input: its ``Encoding.offsets`` are character (code
point) offsets into the original text, through every normalisation step — ``<br />``
replaced by a space, curly apostrophes, NFKD and stripped accents, lower-casing. So
``text[start:end]`` is the token as sent: "Don’t" for ``don't``, "Café" for ``cafe``,
"ﬁlm" for ``film``. One character that folds into several tokens ("½" is ``1 ⁄ 2``)
gives each of them that character's span; a decomposed accent after a letter belongs to
the letter's token. The ids are the ones the service's faster
encoders give (tested equal), so /explain scores exactly what /predict scores.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np

from sentiment_core.encoder import TextEncoder


@dataclass(frozen=True, slots=True)
class TokenSpans:
    ids: np.ndarray  # int32, before truncation
    tokens: list[str]  # what the model reads: normalised words, or [UNK]
    offsets: list[tuple[int, int]]  # code points into the text as sent


def encode_with_offsets(reference: TextEncoder, text: str) -> TokenSpans:
    encoding = reference.tokenizer.encode(text, add_special_tokens=False)
    return TokenSpans(
        np.asarray(encoding.ids, dtype=np.int32),
        list(encoding.tokens),
        _with_trailing_marks(text, encoding.offsets),
    )


def _with_trailing_marks(text: str, offsets: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans that also cover the marks right after them: accent stripping drops a
    decomposed accent from the alignment ("e" + U+0301 would end before the accent), and
    the token as sent is the accented letter. Every mark (Unicode M*), not only those with
    a combining class: Devanagari and Thai vowel signs, U+FE0F and the keycap U+20E3 have
    none, and "अच्छा" must not lose its final vowel sign."""
    spans = []
    for i, (start, end) in enumerate(offsets):
        limit = offsets[i + 1][0] if i + 1 < len(offsets) else len(text)
        while end < limit and unicodedata.category(text[end])[0] == "M":
            end += 1
        spans.append((start, end))
    return spans
