"""The tokenizer definition: normalisation, pre-tokenisation, vocabulary, PAD/UNK.

It is a Hugging Face ``tokenizers`` WordLevel tokenizer saved as a standard
``tokenizer.json`` inside the model bundle, so serving encodes exactly as training did and
any language with a ``tokenizers`` binding can load it. Truncation is not part of
``tokenizer.json`` (``head+tail`` is not a policy ``tokenizers`` offers): ``truncate`` applies
it, and the manifest records it. The rules are explained in docs/tokenizer.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from tokenizers.trainers import WordLevelTrainer

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
PAD_ID = 0
UNK_ID = 1
TRUNCATION_POLICIES = ("head", "tail", "head+tail")

# A word (letters/digits/underscore, with inner apostrophes) or one other non-space char.
TOKEN_PATTERN = r"\w+(?:'\w+)*|[^\w\s]"
# IMDB's line breaks; replaced by a space before anything else. No two parts may match the
# same spaces: "<\s*br\s*/?\s*>" (older bundles') matches the same strings but backtracks
# quadratically on "<br" + many spaces (docs/security.md).
BREAK_PATTERN = r"(?i)<\s*br\s*(?:/\s*)?>"
LEGACY_BREAK_PATTERN = r"(?i)<\s*br\s*/?\s*>"
# Apostrophe look-alikes folded to "'" so that "don’t" is "don't".
APOSTROPHES = "‘’`´"

# C0 control codes other than tab, newline and carriage return, and DEL (a class body).
# The service refuses texts holding them; its fast encoder leaves them to Rust.
CONTROL_CHARS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
CONTROL_CHAR = re.compile(f"[{CONTROL_CHARS}]")
# Deleting these (the ASCII characters that are not control codes) from a text's ASCII
# bytes leaves its control codes: much cheaper than a regex search on every text.
_NOT_CONTROL = bytes(c for c in range(128) if not CONTROL_CHAR.match(chr(c)))


def has_control_char(text: str) -> bool:
    """Whether ``text`` holds one of ``CONTROL_CHARS`` (same answer as ``CONTROL_CHAR``)."""
    return bool(text.encode("ascii", "ignore").translate(None, _NOT_CONTROL))


def normalizer() -> normalizers.Normalizer:
    return normalizers.Sequence(
        [
            normalizers.Replace(Regex(BREAK_PATTERN), " "),
            normalizers.Replace(Regex(f"[{APOSTROPHES}]"), "'"),
            normalizers.NFKD(),
            normalizers.StripAccents(),
            normalizers.Lowercase(),
        ]
    )


def read_tokenizer(path: str | Path) -> Tokenizer:
    """A bundle's ``tokenizer.json``, its legacy break pattern (if any) replaced by
    ``BREAK_PATTERN``: the same strings match, in linear time."""
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    for step in (spec.get("normalizer") or {}).get("normalizers") or []:
        if step.get("type") == "Replace" and step.get("pattern") == {"Regex": LEGACY_BREAK_PATTERN}:
            step["pattern"] = {"Regex": BREAK_PATTERN}
    return Tokenizer.from_str(json.dumps(spec))


def pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # invert=True keeps the matches (tokens) and drops everything between them (spaces).
    return pre_tokenizers.Split(Regex(TOKEN_PATTERN), behavior="removed", invert=True)


def new_tokenizer(vocab: dict[str, int] | None = None) -> Tokenizer:
    """An empty (or given-vocabulary) tokenizer with our normalisation rules."""
    tokenizer = Tokenizer(WordLevel(vocab or {PAD_TOKEN: PAD_ID, UNK_TOKEN: UNK_ID}, UNK_TOKEN))
    tokenizer.normalizer = normalizer()
    tokenizer.pre_tokenizer = pre_tokenizer()
    return tokenizer


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """Build the vocabulary from training texts: the most frequent tokens get ids 2, 3, ...

    The special tokens are placed by hand rather than through the trainer: a trainer's
    special tokens become "added tokens" that match raw input, so a review containing the
    text "[PAD]" would be encoded as padding and masked away.
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


def follows_our_rules(tokenizer: Tokenizer) -> bool:
    """Whether ``tokenizer`` applies exactly the rules defined here (not an edited copy)."""
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

    ``head+tail`` keeps the first quarter and the last three quarters of the budget:
    reviews open with context and close with the verdict (Sun et al., 2019).
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
