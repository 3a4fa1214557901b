"""The reference encoder: the Rust ``tokenizers`` pipeline, then truncation and padding.

Everything between a string and the model's input. Training encodes with it, and the
service's faster encoders are tested equal to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from sentiment_core.tokenizer import (
    PAD_ID,
    TRUNCATION_POLICIES,
    UNK_ID,
    UNK_TOKEN,
    read_tokenizer,
    truncate,
)


@dataclass(frozen=True, slots=True)
class Encoded:
    """One text as the model sees it, before padding.

    ``ids`` is a list, or an int32 numpy array where a fast encoder made one.
    ``tokens`` is empty when the caller asked for ids only.
    """

    ids: Sequence[int]
    tokens: list[str]
    truncated: bool
    original_length: int
    unknown_tokens: int


class TextEncoder:
    """Tokenizer + truncation policy: ``encode`` turns texts into ``Encoded``."""

    def __init__(self, tokenizer: Tokenizer, max_length: int, truncation: str = "head+tail"):
        if truncation not in TRUNCATION_POLICIES:
            raise ValueError(f"unknown truncation policy {truncation!r}")
        if max_length < 1:
            raise ValueError("max_length must be at least 1")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.truncation = truncation
        tokenizer.no_truncation()
        tokenizer.no_padding()

    @classmethod
    def from_file(cls, path: str | Path, max_length: int, truncation: str) -> TextEncoder:
        return cls(read_tokenizer(path), max_length, truncation)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, texts: Sequence[str], with_tokens: bool = True) -> list[Encoded]:
        """Encode and truncate each text; ``with_tokens=False`` leaves ``tokens`` empty."""
        if not texts:
            return []
        # encode_batch parallelises in Rust; for one text its thread hand-off costs more.
        encodings = (
            [self.tokenizer.encode(texts[0], add_special_tokens=False)]
            if len(texts) == 1
            else self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        )
        return [self.finish(e.ids, e.tokens if with_tokens else [], with_tokens) for e in encodings]

    def encode_ids(self, texts: Sequence[str]) -> list[Sequence[int]]:
        return [e.ids for e in self.encode(texts, with_tokens=False)]

    def finish(self, ids: list[int], tokens: list[str], with_tokens: bool) -> Encoded:
        """Truncate one text's ids (and tokens) and count what the model sees."""
        n = len(ids)
        if n == 0:
            return no_tokens(with_tokens)
        if n <= self.max_length:
            return Encoded(ids, tokens, False, n, ids.count(UNK_ID))
        ids = list(truncate(ids, self.max_length, self.truncation))
        if with_tokens:
            tokens = list(truncate(tokens, self.max_length, self.truncation))
        return Encoded(ids, tokens, True, n, ids.count(UNK_ID))


def no_tokens(with_tokens: bool) -> Encoded:
    """A text with no tokens at all (e.g. only combining marks): the model reads one
    unknown word, so every text has length >= 1 in training and serving alike."""
    return Encoded([UNK_ID], [UNK_TOKEN] if with_tokens else [], False, 0, 1)


def pad_batch(sequences: Sequence[Sequence[int]], length: int | None = None) -> np.ndarray:
    """Post-pad with ``PAD_ID`` into an int32 matrix (the model masks the padding).

    Padding goes at the end because the exported LSTM reads ``sequence_lens``: real
    tokens must come first. An empty sequence keeps one padding slot so shapes stay valid.
    """
    width = max(1, length or max((len(s) for s in sequences), default=1))
    batch = np.full((len(sequences), width), PAD_ID, dtype=np.int32)
    for row, seq in enumerate(sequences):
        batch[row, : len(seq)] = seq[:width]
    return batch
