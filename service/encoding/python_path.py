"""The fast encoder: the tokenizer's rules restated in Python for the texts it can prove
it handles exactly as the Rust pipeline does; the rest go through Rust.

The Rust tokenizer costs about four times as much per review, mostly in crossing into
Rust and back. ``_normalize`` returns None for any text it cannot vouch for (control
codes, characters on which the two regex engines disagree), and those take the
reference path. Equivalence with the reference encoder is tested on generated text and
on the IMDB test set (tests/service/encoding/). Switch: ``SENTIMENT_PYTHON_ENCODER``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from itertools import repeat

import numpy as np
from tokenizers import Regex, normalizers

from sentiment_core.encoder import Encoded, TextEncoder, no_tokens
from sentiment_core.tokenizer import (
    APOSTROPHES,
    BREAK_PATTERN,
    CONTROL_CHAR,
    TOKEN_PATTERN,
    UNK_ID,
    UNK_TOKEN,
    follows_our_rules,
    has_control_char,
    truncate,
)
from service.encoding.encoder import Encoder
from service.encoding.placement import encode_on_loop
from service.encoding.vocab_table import VocabTable

_BREAK = re.compile(BREAK_PATTERN)
# No possessive quantifiers (``\w++``): Python 3.11.2 (the container's) matches them
# wrongly ("parents' expectations" gave "parents'").
TOKEN = re.compile(TOKEN_PATTERN)
# The same pattern for ASCII text with explicit classes (what ``\w`` and ``\s`` match among
# ASCII characters; in Python \x1c-\x1f are spaces): bitmaps instead of Unicode lookups.
ASCII_TOKEN = re.compile(r"[A-Za-z0-9_]+(?:'[A-Za-z0-9_]+)*|[^A-Za-z0-9_\t\n\v\f\r\x1c-\x1f ]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# The character classes the regexes ask about: of the raw text (``<br />``) and of the
# normalised text (the pre-tokenizer). Python and Rust must agree on each.
_BREAK_CLASSES = (r"\s", r"(?i)[<>/br]")
_TOKEN_CLASSES = (r"\w", r"\s")
_PYTHON_CLASSES = {c: re.compile(c) for c in _BREAK_CLASSES + _TOKEN_CLASSES}
# Folds remembered, and new characters folded per text: a client sending rare characters
# can slow its own texts (they go to Rust), never grow memory or hold the loop.
FOLD_CACHE_SIZE = 65_536
NEW_FOLDS_PER_TEXT = 32
_UNSEEN = object()
# The vocab table's fixed cost per call equals the regex's on a few reviews; bigger calls
# are cut to bound its temporary arrays.
TABLE_MIN_CHARS = 4096
TABLE_MAX_CHARS = 1 << 18


class CharacterFolds:
    """What the Rust normalizer makes of each non-ASCII character, asked once and kept.

    NFKD, accent stripping and lower-casing act on each character alone, so a text folds
    to the concatenation of its characters' folds.
    """

    def __init__(self, normalizer: normalizers.Normalizer):
        self._normalizer = normalizer
        self._rust_classes = {c: normalizers.Replace(Regex(c), "") for c in _PYTHON_CLASSES}
        self._folds: dict[str, str | None] = {}

    def __len__(self) -> int:
        return len(self._folds)

    def of(self, text: str) -> dict[str, str] | None:
        """The fold of each distinct non-ASCII character of ``text``; None if one has none."""
        folds: dict[str, str] = {}
        new = 0
        for char in set(_NON_ASCII.findall(text)):
            fold = self._folds.get(char, _UNSEEN)
            if fold is _UNSEEN:
                if new == NEW_FOLDS_PER_TEXT or len(self._folds) >= FOLD_CACHE_SIZE:
                    return None
                new += 1
                fold = self._folds[char] = self._fold(char)
            if fold is None:
                return None
            folds[char] = fold
        return folds

    def _fold(self, char: str) -> str | None:
        """One character as the Rust normalizer leaves it; None if Python must not."""
        if "\ud800" <= char <= "\udfff":  # a lone surrogate: left to Rust, which refuses it
            return None
        fold: str | None = self._normalizer.normalize_str(char)
        if not (
            self._classified_alike(char, _BREAK_CLASSES)
            and all(self._classified_alike(c, _TOKEN_CLASSES) for c in fold)
            and not CONTROL_CHAR.search(fold)
            and fold.lower() == fold  # (the whole text is lower-cased by Python afterwards)
        ):
            fold = None
        return fold

    def _classified_alike(self, char: str, classes: tuple[str, ...]) -> bool:
        """Whether ``re`` and Rust's engine agree on whether ``char`` is in each class."""
        return all(
            (_PYTHON_CLASSES[c].match(char) is None)
            == (self._rust_classes[c].normalize_str(char) == char)
            for c in classes
        )


class PythonPathEncoder(Encoder):
    """``Encoder`` with the Python path first; ``vocab_table``: a batch's ids in numpy."""

    def __init__(self, reference: TextEncoder, *, vocab_table: bool = True, on_loop: bool = True):
        super().__init__(reference)
        self._on_loop = on_loop
        self._vocab = reference.tokenizer.get_vocab()
        # The Python path restates *our* rules; a tokenizer.json with other rules (an
        # older or hand-edited bundle) is always encoded by the Rust library.
        self.python_path = follows_our_rules(reference.tokenizer)
        self.folds = CharacterFolds(reference.tokenizer.normalizer)
        use_table = vocab_table and self.python_path
        self.table = VocabTable(self._vocab, UNK_ID) if use_table else None

    def encode(self, texts: Sequence[str], with_tokens: bool = True) -> list[Encoded]:
        """Every text Python can vouch for through the Python path, the rest through Rust."""
        out, rust = self._encode_python_path(texts, with_tokens)
        if rust:
            done = self.reference.encode([texts[i] for i in rust], with_tokens)
            for i, encoded in zip(rust, done, strict=True):
                out[i] = encoded
        return out  # type: ignore[return-value]

    async def encode_async(self, texts: Sequence[str], with_tokens: bool) -> list[Encoded]:
        if self._on_loop:
            return await encode_on_loop(self, texts, with_tokens)
        return await super().encode_async(texts, with_tokens)

    def _encode_python_path(
        self, texts: Sequence[str], with_tokens: bool
    ) -> tuple[list[Encoded | None], list[int]]:
        """Every text Python can encode (None where not), and the indices of the rest."""
        out: list[Encoded | None] = [None] * len(texts)
        rust: list[int] = []
        by_table: list[tuple[int, str]] = []
        takes = self.table.takes if self.table is not None and not with_tokens else None
        for i, text in enumerate(texts):
            normalized = self.normalize(text) if self.python_path else None
            if normalized is None:
                rust.append(i)
            elif takes is not None and takes(normalized):
                by_table.append((i, normalized))
            else:
                ids, tokens = self._tokenize(normalized, with_tokens)
                out[i] = self.reference.finish(ids, tokens, with_tokens)
        if by_table:
            self._encode_by_table(by_table, out)
        return out, rust

    def normalize(self, text: str) -> str | None:
        """What ``tokenizer.json``'s normalizer makes of ``text``, when Python can tell.

        Two steps are not per character and are done first, on the raw text, as Rust does
        them: ``<br />`` and the apostrophe look-alikes (a folded character may become
        one, and must stay one). Then each non-ASCII character is replaced by its fold.
        """
        if has_control_char(text):
            return None
        folds = {} if text.isascii() else self.folds.of(text)
        if folds is None:
            return None
        text = _BREAK.sub(" ", text).replace("`", "'")
        for char, fold in folds.items():
            text = text.replace(char, fold)
        return text.lower()

    def _tokenize(self, normalized: str, with_tokens: bool) -> tuple[list[int], list[str]]:
        """The pre-tokenizer and WordLevel model on text from ``normalize``."""
        words = (ASCII_TOKEN if normalized.isascii() else TOKEN).findall(normalized)
        ids = list(map(self._vocab.get, words, repeat(UNK_ID)))
        if not with_tokens:
            return ids, []
        return ids, [w if i != UNK_ID else UNK_TOKEN for w, i in zip(words, ids, strict=True)]

    def _encode_by_table(self, texts: list[tuple[int, str]], out: list[Encoded | None]) -> None:
        """Ids of normalised texts through the vocab table, into ``out`` at their indices;
        small calls use the regex (the table has a fixed cost per call)."""
        if sum(len(text) for _, text in texts) < TABLE_MIN_CHARS:
            for i, text in texts:
                out[i] = self.reference.finish(self._tokenize(text, False)[0], [], False)
            return
        assert self.table is not None
        for piece in pieces(texts, TABLE_MAX_CHARS):
            for (i, _), ids in zip(piece, self.table.ids([t for _, t in piece]), strict=True):
                out[i] = self._finish_array(ids)

    def _finish_array(self, ids: np.ndarray) -> Encoded:
        """``TextEncoder.finish`` for the vocab table's int32 arrays (ids only)."""
        n = len(ids)
        if n == 0:
            return no_tokens(False)
        truncated = n > self.max_length
        if truncated:
            ids = truncate(ids, self.max_length, self.reference.truncation)
        return Encoded(ids, [], truncated, n, int(np.count_nonzero(ids == UNK_ID)))


def pieces(texts: list[tuple[int, str]], max_chars: int) -> Iterator[list[tuple[int, str]]]:
    """Consecutive runs of ``texts`` of at most ``max_chars`` characters (or one text)."""
    piece: list[tuple[int, str]] = []
    chars = 0
    for item in texts:
        if piece and chars + len(item[1]) > max_chars:
            yield piece
            piece, chars = [], 0
        piece.append(item)
        chars += len(item[1])
    if piece:
        yield piece


assert "`" in APOSTROPHES  # ``normalize`` replaces it before folding (see its docstring)
