"""The one tokenizer: training builds its vocabulary with it, the service encodes with it.

It is a Hugging Face ``tokenizers`` WordLevel tokenizer saved as a standard
``tokenizer.json`` inside the model bundle, so serving encodes exactly as training
did and any language with a ``tokenizers`` binding can load it. Truncation is applied
here, not inside ``tokenizer.json``, because the policy we use ("head+tail") is not one
that ``tokenizers`` offers; it is recorded in the bundle manifest.

Decisions (documented in docs/tokenizer.md):
- ``<br />`` tags (IMDB's line breaks) become spaces.
- Curly and back-tick apostrophes become ``'``; NFKD + accent stripping folds "café" to
  "cafe" and compatibility forms (full-width letters, ligatures, non-breaking spaces) to
  their plain equivalents; everything is lower-cased.
- Words keep inner apostrophes ("don't", "isn't" stay one token: negation carries
  sentiment); every other punctuation character is its own token ("!!" is two "!").
- Id 0 is padding, id 1 is the unknown word.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from tokenizers.trainers import WordLevelTrainer

from service.vocab_table import VocabTable

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
PAD_ID = 0
UNK_ID = 1
TRUNCATION_POLICIES = ("head", "tail", "head+tail")

# A word (letters/digits/underscore, with inner apostrophes) or one other non-space char.
_TOKEN_PATTERN = r"\w+(?:'\w+)*|[^\w\s]"


# The same rules in Python's ``re``, for the Python path (``TextEncoder._normalize``). The
# regexes ask three things of a character: is it ``\w``, is it ``\s``, is it one of the
# ``<br />`` letters (case-insensitively). Where Python and Rust's engine (Oniguruma) give
# the same answers for every character of a text, they match it the same way: that holds
# for printable ASCII and most other characters (checked per character, cached).
_BREAK = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
# No possessive quantifiers (``\w++``): 5% faster, but Python 3.11.2 (Debian 12's, which
# the container image runs) matches them wrongly: "parents' expectations" gave "parents'".
_TOKEN = re.compile(_TOKEN_PATTERN)
# The same pattern for ASCII text, with explicit classes: what ``\w`` and ``\s`` match
# among ASCII characters (in Python, \x1c-\x1f are spaces), checked as bitmaps instead
# of Unicode lookups: 25% faster on reviews. Tested equal to ``_TOKEN`` on every ASCII char.
_ASCII_TOKEN = re.compile(r"[A-Za-z0-9_]+(?:'[A-Za-z0-9_]+)*|[^A-Za-z0-9_\t\n\v\f\r\x1c-\x1f ]")
_BREAK_CLASSES = (r"\s", r"(?i)[<>/br]")  # what the <br /> regex asks (of the raw text)
_TOKEN_CLASSES = (r"\w", r"\s")  # what the pre-tokenizer asks (of the normalised text)
_PYTHON_CLASSES = {c: re.compile(c) for c in _BREAK_CLASSES + _TOKEN_CLASSES}
# C0 control codes other than tab, newline and carriage return, and DEL (a class body).
# The service refuses texts with them (service/routes.py); here they take the Rust path.
CONTROL_CHARS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
CONTROL_CHAR = re.compile(f"[{CONTROL_CHARS}]")
# The ASCII characters that are not among them: deleting these from a text's ASCII bytes
# leaves its control codes (every control code is ASCII). ``has_control_char`` runs on
# every text twice (the service's input check, the encoder's) and this way costs 0.6 µs
# on a review against 3 µs for ``CONTROL_CHAR.search``.
_NOT_CONTROL = bytes(c for c in range(128) if not CONTROL_CHAR.match(chr(c)))
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# Folding a character the first time costs ~8 µs (five calls into Rust); the results are
# remembered, up to this many characters (a few MB). A text needing more new characters
# than ``_NEW_FOLDS_PER_TEXT``, or any once the memory is full, goes through Rust instead:
# a client sending rare characters can slow its own texts down, never the event loop.
_FOLD_CACHE_SIZE = 65_536
_NEW_FOLDS_PER_TEXT = 32
_UNSEEN = object()
# The vocab table's fixed cost (30-45 µs a call) equals the regex's on 2,000-4,000
# characters (2-4 reviews); bigger calls are cut into parts to bound its temporary arrays
# (~20 bytes a character on reviews, up to ~90 on punctuation only: at most ~25 MB).
_TABLE_MIN_CHARS = 4096
_TABLE_MAX_CHARS = 1 << 18


def has_control_char(text: str) -> bool:
    """Whether ``text`` holds one of ``CONTROL_CHARS`` (same answer as ``CONTROL_CHAR``)."""
    return bool(text.encode("ascii", "ignore").translate(None, _NOT_CONTROL))


def _normalizer() -> normalizers.Normalizer:
    return normalizers.Sequence(
        [
            normalizers.Replace(Regex(r"(?i)<\s*br\s*/?\s*>"), " "),
            normalizers.Replace(Regex("[‘’`´]"), "'"),
            normalizers.NFKD(),
            normalizers.StripAccents(),
            normalizers.Lowercase(),
        ]
    )


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # invert=True keeps the matches (tokens) and drops everything between them (spaces).
    return pre_tokenizers.Split(Regex(_TOKEN_PATTERN), behavior="removed", invert=True)


def new_tokenizer(vocab: dict[str, int] | None = None) -> Tokenizer:
    """An empty (or given-vocabulary) tokenizer with our normalisation rules."""
    tokenizer = Tokenizer(WordLevel(vocab or {PAD_TOKEN: PAD_ID, UNK_TOKEN: UNK_ID}, UNK_TOKEN))
    tokenizer.normalizer = _normalizer()
    tokenizer.pre_tokenizer = _pre_tokenizer()
    return tokenizer


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """Build the vocabulary from training texts: the most frequent tokens get ids 2, 3, ...

    The special tokens are placed in the vocabulary by hand instead of through the
    trainer: a trainer's special tokens become "added tokens" that match raw input, so a
    review containing the text "[PAD]" would be encoded as padding and masked away.
    """
    words = new_tokenizer()
    trainer = WordLevelTrainer(
        vocab_size=max(1, vocab_size - 2),
        min_frequency=min_frequency,
        special_tokens=[],
        show_progress=False,
    )
    words.train_from_iterator(texts, trainer=trainer)
    by_frequency = sorted(words.get_vocab().items(), key=lambda item: item[1])
    vocab = {PAD_TOKEN: PAD_ID, UNK_TOKEN: UNK_ID}
    for word, _ in by_frequency:
        vocab.setdefault(word, len(vocab))
    return new_tokenizer(vocab)


@dataclass(frozen=True, slots=True)
class Encoded:
    """One text as the model sees it, before padding.

    ``ids`` is a list, or an int32 numpy array where the vocab table encoded the text
    (``encode(..., with_tokens=False)``: ids for the model, no tokens).
    """

    ids: Sequence[int]
    tokens: list[str]
    truncated: bool
    original_length: int
    unknown_tokens: int


def _is_our_pipeline(tokenizer: Tokenizer) -> bool:
    """Whether ``tokenizer`` applies exactly the rules the Python path restates.

    (``TextEncoder._normalize`` and ``_tokenize``, and service/vocab_table.py.)
    """
    given, ours = json.loads(tokenizer.to_str()), json.loads(new_tokenizer().to_str())
    model = given.get("model") or {}
    vocab = model.get("vocab") or {}
    return (
        given.get("normalizer") == ours["normalizer"]
        and given.get("pre_tokenizer") == ours["pre_tokenizer"]
        and not given.get("added_tokens")
        and model.get("type") == "WordLevel"
        and model.get("unk_token") == UNK_TOKEN
        and vocab.get(UNK_TOKEN) == UNK_ID
    )


def truncate(items: Sequence, max_length: int, policy: str) -> Sequence:
    """Cut a token sequence to ``max_length`` by the bundle's policy.

    ``head`` keeps the beginning, ``tail`` the end, ``head+tail`` the first quarter and
    the last three quarters of the budget: reviews tend to open with context and close
    with the verdict, and Sun et al. (2019) found head+tail the best cut for long reviews.
    """
    if len(items) <= max_length:
        return items
    if policy == "head":
        return items[:max_length]
    if policy == "tail":
        return items[len(items) - max_length :]
    if policy == "head+tail":
        head = max_length // 4
        tail = items[len(items) - (max_length - head) :]
        if isinstance(items, np.ndarray):
            return np.concatenate((items[:head], tail))
        return list(items[:head]) + list(tail)
    raise ValueError(f"unknown truncation policy {policy!r}; expected one of {TRUNCATION_POLICIES}")


class TextEncoder:
    """Tokenizer + truncation policy + padding: everything between a string and model input."""

    def __init__(self, tokenizer: Tokenizer, max_length: int, truncation: str = "head+tail"):
        if truncation not in TRUNCATION_POLICIES:
            raise ValueError(f"unknown truncation policy {truncation!r}")
        if max_length < 1:
            raise ValueError("max_length must be at least 1")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.truncation = truncation
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self._vocab = tokenizer.get_vocab()
        # The Python path restates *our* rules; a tokenizer.json with other rules (an
        # older or hand-edited bundle) is always encoded by the Rust library.
        self._python_path = _is_our_pipeline(tokenizer)
        # The Rust engine's answers, asked by replacing a match with nothing.
        self._rust_classes = {c: normalizers.Replace(Regex(c), "") for c in _PYTHON_CLASSES}
        self._folds: dict[str, str | None] = {}
        self._table = VocabTable(self._vocab, UNK_ID) if self._python_path else None

    @classmethod
    def from_file(cls, path: str | Path, max_length: int, truncation: str) -> TextEncoder:
        return cls(Tokenizer.from_file(str(path)), max_length, truncation)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, texts: Sequence[str], with_tokens: bool = True) -> list[Encoded]:
        """Encode texts and truncate each to ``max_length``.

        ``with_tokens=False`` skips building the token strings (``tokens`` is then empty):
        scoring needs only the ids, and a long review has hundreds of tokens. Its ids may
        then come as int32 arrays (the vocab table's; see ``Encoded``).
        """
        out, rust = self.encode_python_path(texts, with_tokens)
        if rust:
            self.encode_rust_path(texts, rust, out, with_tokens)
        return out  # type: ignore[return-value]

    def encode_python_path(
        self, texts: Sequence[str], with_tokens: bool
    ) -> tuple[list[Encoded | None], list[int]]:
        """``encode``'s first half: every text Python can encode, holding the GIL.

        Returns the results (None where not done yet) and the indices of the texts left
        for ``encode_rust_path``. Split so that a server can run this half on its event
        loop and only the Rust half, which releases the GIL, in a thread.
        """
        out: list[Encoded | None] = [None] * len(texts)
        rust: list[int] = []
        table: list[tuple[int, str]] = []  # ids only: the vocab table (``VocabTable.takes``)
        takes = self._table.takes if self._table is not None else None
        for i, text in enumerate(texts):
            normalized = self._normalize(text) if self._python_path else None
            if normalized is None:
                rust.append(i)
            elif not with_tokens and takes is not None and takes(normalized):
                table.append((i, normalized))
            else:
                out[i] = self._finish(*self._tokenize(normalized, with_tokens), with_tokens)
        if table:
            self._encode_by_table(table, out)
        return out, rust

    def encode_rust_path(
        self,
        texts: Sequence[str],
        indices: list[int],
        out: list[Encoded | None],
        with_tokens: bool,
    ) -> None:
        """``encode``'s second half: ``texts[i]`` for each ``i`` in ``indices``, into ``out``."""
        batch = [texts[i] for i in indices]
        # encode_batch parallelises in Rust; for one text its thread hand-off costs more.
        encodings = (
            [self.tokenizer.encode(batch[0], add_special_tokens=False)]
            if len(batch) == 1
            else self.tokenizer.encode_batch(batch, add_special_tokens=False)
        )
        for i, enc in zip(indices, encodings, strict=True):
            out[i] = self._finish(enc.ids, enc.tokens if with_tokens else [], with_tokens)

    def _encode_by_table(self, texts: list[tuple[int, str]], out: list[Encoded | None]) -> None:
        """Ids of normalised texts the vocab table takes, into ``out`` at their indices.

        The vocab table does a whole call's texts in numpy (service/vocab_table.py): 3x
        faster per review than the regex, but with a fixed cost, so small calls use the regex.
        """
        if sum(len(text) for _, text in texts) < _TABLE_MIN_CHARS:
            for i, text in texts:
                out[i] = self._finish(*self._tokenize(text, False), False)
            return
        table = self._table
        assert table is not None  # (texts reach here only on the Python path)
        for part in _chunks(texts, _TABLE_MAX_CHARS):
            for (i, _), ids in zip(part, table.ids([t for _, t in part]), strict=True):
                out[i] = self._finish_array(ids)

    def _normalize(self, text: str) -> str | None:
        """What ``tokenizer.json``'s normalizer makes of ``text``, when Python can tell; else None.

        The Rust tokenizer costs ~0.2 ms per review (~0.3 with any non-ASCII character),
        its Python restatement ~0.05. Non-ASCII characters are folded one at a time by the
        Rust normalizer itself (cached): NFKD, accent stripping and lower-casing act on each
        character alone, so a text folds to the concatenation of its characters' folds.
        Two steps are not per character and are done first, on the raw text, as Rust does
        them: ``<br />`` replacement and the back-tick (a folded character may become one,
        and must stay one). Texts with ASCII control codes, or with a character on which
        the two regex engines disagree (``_fold``), return None and go through Rust.
        Equivalence is tested on generated text and on IMDB
        (tests/training/test_tokenizer.py, tests/training/test_committed_bundle.py).
        """
        if has_control_char(text):
            return None
        folds = {} if text.isascii() else self._folds_of(text)
        if folds is None:
            return None
        text = _BREAK.sub(" ", text).replace("`", "'")
        for char, fold in folds.items():
            text = text.replace(char, fold)
        return text.lower()

    def _folds_of(self, text: str) -> dict[str, str] | None:
        """The fold of each distinct non-ASCII character of ``text``; None if one has none."""
        folds: dict[str, str] = {}
        new = 0
        for char in set(_NON_ASCII.findall(text)):
            fold = self._folds.get(char, _UNSEEN)
            if fold is _UNSEEN:
                if new == _NEW_FOLDS_PER_TEXT or len(self._folds) >= _FOLD_CACHE_SIZE:
                    return None
                new += 1
                fold = self._folds[char] = self._fold(char)
            if fold is None:
                return None
            folds[char] = fold
        return folds

    def _fold(self, char: str) -> str | None:
        """One non-ASCII character as the Rust normalizer leaves it; None if Python must not."""
        if "\ud800" <= char <= "\udfff":  # a lone surrogate: left to Rust, which refuses it
            return None
        fold: str | None = self.tokenizer.normalizer.normalize_str(char)
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

    def _tokenize(self, normalized: str, with_tokens: bool) -> tuple[list[int], list[str]]:
        """The pre-tokenizer and WordLevel model on text from ``_normalize``."""
        words = (_ASCII_TOKEN if normalized.isascii() else _TOKEN).findall(normalized)
        # map with vocab.get: 15% faster than a list comprehension of the same lookups.
        ids = list(map(self._vocab.get, words, repeat(UNK_ID)))
        if not with_tokens:
            return ids, []
        return ids, [w if i != UNK_ID else UNK_TOKEN for w, i in zip(words, ids, strict=True)]

    def _finish(self, ids: list[int], tokens: list[str], with_tokens: bool) -> Encoded:
        n = len(ids)
        if n == 0:
            return _no_tokens(with_tokens)
        if n <= self.max_length:
            return Encoded(ids, tokens, False, n, ids.count(UNK_ID))
        ids = list(truncate(ids, self.max_length, self.truncation))
        if with_tokens:
            tokens = list(truncate(tokens, self.max_length, self.truncation))
        return Encoded(ids, tokens, True, n, ids.count(UNK_ID))

    def _finish_array(self, ids: np.ndarray) -> Encoded:
        """``_finish`` for the vocab table's arrays (ids only)."""
        n = len(ids)
        if n == 0:
            return _no_tokens(False)
        truncated = n > self.max_length
        if truncated:
            ids = truncate(ids, self.max_length, self.truncation)
        return Encoded(ids, [], truncated, n, int(np.count_nonzero(ids == UNK_ID)))

    def encode_ids(self, texts: Sequence[str]) -> list[Sequence[int]]:
        return [e.ids for e in self.encode(texts, with_tokens=False)]


def _no_tokens(with_tokens: bool) -> Encoded:
    # Text with no tokens at all (e.g. only combining marks): the model reads one
    # unknown word, so every text has length >= 1 in training and serving alike.
    return Encoded([UNK_ID], [UNK_TOKEN] if with_tokens else [], False, 0, 1)


def _chunks(texts: list[tuple[int, str]], max_chars: int) -> Iterator[list[tuple[int, str]]]:
    """Consecutive runs of ``texts`` of at most ``max_chars`` characters (or one text)."""
    part: list[tuple[int, str]] = []
    chars = 0
    for item in texts:
        if part and chars + len(item[1]) > max_chars:
            yield part
            part, chars = [], 0
        part.append(item)
        chars += len(item[1])
    if part:
        yield part


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
