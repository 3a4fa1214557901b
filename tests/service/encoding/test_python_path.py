"""The fast encoder (service/encoding/python_path.py): the same answers as the reference
encoder on generated text of every kind, through the regex and through the vocab table."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

import service.encoding.python_path as python_path
from sentiment_core.encoder import Encoded, TextEncoder
from sentiment_core.tokenizer import TOKEN_PATTERN, train_tokenizer
from service.encoding.python_path import ASCII_TOKEN, TOKEN, PythonPathEncoder

CORPUS = [
    "I loved this movie! Don't miss it.",
    "I hated this movie. It isn't good, it's bad!!",
    "A café scene, naïve but fine.<br /><br />The end",
    "Great acting, great story; great film.",
] * 3


def fast(max_length: int = 8) -> PythonPathEncoder:
    tokenizer = train_tokenizer(CORPUS, vocab_size=200, min_frequency=1)
    return PythonPathEncoder(TextEncoder(tokenizer, max_length=max_length))


@pytest.fixture(scope="module")
def encoder() -> PythonPathEncoder:
    return fast()


def rust_path(encoder: PythonPathEncoder, text: str) -> Encoded:
    """The reference: tokenizer.json through the Rust library, then our truncation."""
    return encoder.reference.encode([text])[0]


ASCII_PIECES = st.one_of(
    st.text(alphabet=[chr(c) for c in range(0x20, 0x7F)] + ["\t", "\n", "\r"], max_size=40),
    st.sampled_from(
        [
            "<br />",
            "<BR>",
            "< br/ >",
            "<br\t/\n>",
            "<br",
            "br>",
            "`",
            "'",
            "''",
            "don't",
            "it`s",
            "_",
            "__init__",
            "42",
            "a'b'c",
            "'quoted'",
            "movie",
            "Great",
            "LOVED",
            "!?.",
        ]
    ),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(ASCII_PIECES, max_size=12).map("".join))
def test_ascii_fast_path_equals_the_rust_tokenizer(encoder, text):
    assert encoder.normalize(text) is not None  # printable ASCII always takes the Python path
    assert encoder.encode([text])[0] == rust_path(encoder, text)
    assert encoder.encode([text], with_tokens=False)[0].ids == rust_path(encoder, text).ids


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(ASCII_PIECES, max_size=12).map("".join), min_size=1, max_size=8))
def test_many_texts_at_once_take_the_vocab_table_and_equal_the_rust_tokenizer(encoder, texts):
    """A call with enough text encodes its ASCII texts' ids in numpy (service/vocab_table.py)."""
    batch = [*texts, "A long review, don't you think? " * 140]
    assert sum(map(len, batch)) >= python_path.TABLE_MIN_CHARS
    calls = []
    table_ids = encoder.table.ids
    encoder.table.ids = lambda part: calls.append(len(part)) or table_ids(part)
    try:
        got = encoder.encode(batch, with_tokens=False)
    finally:
        del encoder.table.ids
    assert sum(calls) == len(batch)  # every text went through the table
    # (the table's int32 arrays; a text without tokens reads as one unknown word, a list)
    assert all(isinstance(e.ids, np.ndarray) for e in got if e.original_length)
    want = [rust_path(encoder, text) for text in batch]
    assert [(list(e.ids), e.truncated, e.original_length, e.unknown_tokens) for e in got] == [
        (e.ids, e.truncated, e.original_length, e.unknown_tokens) for e in want
    ]


@pytest.mark.parametrize(
    "text",
    ["her parents' expectations", "the dogs' bowl'", "rock'n'roll's", "''quoted''", "a' b 'c"],
)
def test_trailing_and_doubled_apostrophes_split_as_in_rust(encoder, text):
    """Possessive quantifiers (``\\w++``) got these wrong on Python 3.11.2: never use them."""
    for with_tokens in (True, False):
        assert encoder.encode([text], with_tokens)[0].ids == rust_path(encoder, text).ids
    assert ASCII_TOKEN.findall(text) == re.findall(TOKEN_PATTERN, text)


def test_a_big_call_is_cut_into_parts_and_keeps_its_order(encoder, monkeypatch):
    texts = [f"review {k}: " + "great film, don't miss it! " * (k % 7) for k in range(300)]
    want = [list(e.ids) for e in encoder.encode(texts, with_tokens=False)]  # (one part: 22k)
    monkeypatch.setattr(python_path, "TABLE_MAX_CHARS", 500)
    assert [list(e.ids) for e in encoder.encode(texts, with_tokens=False)] == want
    assert want == [rust_path(encoder, t).ids for t in texts]


def test_the_tables_ids_are_read_only_views(encoder):
    untruncated = PythonPathEncoder(TextEncoder(encoder.reference.tokenizer, max_length=10_000))
    texts = ["A long review, don't you think? " * 140, "another one " * 50]
    got = untruncated.encode(texts, with_tokens=False)
    assert not any(e.truncated for e in got)
    assert all(isinstance(e.ids, np.ndarray) and not e.ids.flags.writeable for e in got)


def test_parts_hold_at_most_max_chars_or_one_text():
    items = list(enumerate(["a" * 10, "", "b" * 30, "c" * 5, "d" * 6]))
    parts = list(python_path.pieces(items, 12))
    assert parts == [[items[0], items[1]], [items[2]], [items[3], items[4]]]
    assert list(python_path.pieces([], 12)) == []


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=[chr(c) for c in range(128)], max_size=60))
def test_the_ascii_token_pattern_matches_the_unicode_one_on_any_ascii_text(text):
    """``ASCII_TOKEN`` spells out ``\\w`` and ``\\s`` for ASCII; every ASCII char, controls too."""
    assert ASCII_TOKEN.findall(text) == TOKEN.findall(text) == re.findall(TOKEN_PATTERN, text)
    every_char = "".join(chr(c) for c in range(128)) + " a'b ''c' d_e'9 " + text
    assert ASCII_TOKEN.findall(every_char) == TOKEN.findall(every_char)


# Characters the per-character folding must get right, or must leave to Rust: accents
# (composed and combining), quotes, dashes, symbols, compatibility forms (full-width,
# ligatures, fractions, Kelvin sign, Roman numerals, titlecase digraphs), letters that
# stay non-ASCII, spaces and joiners that Rust counts as \s or \w, C1 controls, a
# character whose fold is a back-tick (U+1FEF), and full-width "<br>" parts (not a break
# in Rust: it is replaced before NFKD).
UNICODE_PIECES = st.sampled_from(
    [
        "é",
        "ï",
        "ç",
        "Ñ",
        "e\u0301",
        "\u0301",
        "‘",
        "’",
        "“",
        "”",
        "´",
        "–",
        "—",
        "…",
        "£",
        "½",
        "°",
        "²",
        "·",
        "¡",
        "\xa0",
        "\u3000",
        "\u2009",
        "\u200b",
        "\u200d",
        "Ｆｉｎｅ",
        "ﬁ",
        "\u212a",
        "Ⅻ",
        "ǅ",
        "İ",
        "ß",
        "æ",
        "Σ",
        "ς",
        "中文",
        "٣",
        "😀",
        "👍🏻",
        "\x85",
        "\x96",
        "\u1fef",
        "\u2044",
        "＜ｂｒ＞",
        "<ｂｒ>",
        "<br\xa0/>",
        "<\u2009br>",
        "\uff1cbr\uff1e",
        "Café",
        "NAÏVE",
        "don’t",
        "it´s",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(ASCII_PIECES, UNICODE_PIECES), max_size=12).map("".join))
def test_python_path_equals_the_rust_tokenizer_on_mixed_text(encoder, text):
    assert encoder.encode([text])[0] == rust_path(encoder, text)
    assert encoder.encode([text], with_tokens=False)[0].ids == rust_path(encoder, text).ids


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_python_path_equals_the_rust_tokenizer_on_any_text(encoder, text):
    assert encoder.encode([text])[0] == rust_path(encoder, text)


@pytest.mark.parametrize(
    ("text", "python"),
    [
        ("café naïve", True),
        ("don’t – £5", True),
        ("Ｆｉｎｅ film", True),
        ("中文 straße", True),  # letters both engines call \w
        ("a\xa0b\u3000c", True),  # spaces both engines call \s
        ("x\u200dy", True),  # a joiner: punctuation to both (Oniguruma does not follow UTS#18)
        ("x\u0903y", True),  # a mark: \w to Rust only, but accent stripping removes it
        ("\U00010116", False),  # a number that is not a digit: \w to Python, not to Rust
    ],
)
def test_which_texts_the_python_path_takes(encoder, text, python):
    assert (encoder.normalize(text) is not None) == python
    assert encoder.encode([text])[0] == rust_path(encoder, text)


def test_folding_new_characters_is_bounded_per_text_and_in_total(monkeypatch):
    """Folding a new character is a call into Rust: beyond a budget, the text goes to Rust."""
    module = python_path
    fresh = fast()
    many = "".join(chr(0x4E00 + i) for i in range(module.NEW_FOLDS_PER_TEXT + 1))  # CJK
    assert fresh.normalize(many) is None  # too many unseen characters for one text
    assert fresh.encode([many])[0] == rust_path(fresh, many)
    few = many[: module.NEW_FOLDS_PER_TEXT]
    assert fresh.normalize(few) is not None  # within the budget: folded and remembered
    assert fresh.normalize(many) is not None  # now only one of them is new
    monkeypatch.setattr(module, "FOLD_CACHE_SIZE", len(fresh.folds))  # memory full
    assert fresh.normalize(many + "é") is None  # a character never seen: Rust
    assert fresh.encode([many + "é"])[0] == rust_path(fresh, many + "é")
    assert fresh.normalize(many) is not None  # characters already known: still Python


def test_mixed_requests_keep_their_order(encoder):
    texts = ["I loved it", "café naïve", "great film!", "Ｆｉｎｅ film", "", "straße 中文"]
    assert encoder.encode(texts) == [rust_path(encoder, t) for t in texts]


@pytest.mark.parametrize("text", ["vertical\x0btab", "form\x0cfeed", "x\x1cy", "nul\x00"])
def test_control_characters_take_the_rust_path(encoder, text):
    assert encoder.normalize(text) is None  # not eligible for the Python path
    assert encoder.encode([text])[0] == rust_path(encoder, text)


def test_tab_newline_and_return_take_the_python_path_and_agree(encoder):
    text = "tab\there\nnew line\r\nand <BR/>more"
    assert encoder.normalize(text) is not None
    assert encoder.encode([text])[0] == rust_path(encoder, text)


def test_a_tokenizer_with_other_rules_is_always_encoded_by_rust(encoder):
    """An edited tokenizer.json (here: no lower-casing) must not get our Python rules."""
    edited = json.loads(encoder.reference.tokenizer.to_str())
    edited["normalizer"]["normalizers"] = [
        n for n in edited["normalizer"]["normalizers"] if n["type"] != "Lowercase"
    ]
    other = PythonPathEncoder(TextEncoder(Tokenizer.from_str(json.dumps(edited)), max_length=8))
    assert not other.python_path and encoder.python_path
    for text in ["Great Movie", "great movie", "I LOVED it!"]:
        assert other.encode([text])[0] == rust_path(other, text)
    assert other.encode(["Great"])[0].ids != encoder.encode(["Great"])[0].ids


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(ASCII_PIECES, UNICODE_PIECES), max_size=12).map("".join),
        min_size=1,
        max_size=8,
    )
)
def test_non_ascii_texts_in_a_big_call_take_the_vocab_table_and_equal_rust(encoder, texts):
    """After folding, a text that is still not ASCII (curly quotes, dashes, letters that
    keep their accent-free non-ASCII form) is encoded by the vocab table too."""
    batch = [*texts, "“A long review” – don’t you think? " * 140]
    calls = []
    table_ids = encoder.table.ids
    encoder.table.ids = lambda part: calls.extend(part) or table_ids(part)
    try:
        got = encoder.encode(batch, with_tokens=False)
    finally:
        del encoder.table.ids
    assert any(not text.isascii() for text in calls)  # the long review, at least
    want = [rust_path(encoder, text) for text in batch]
    assert [(list(e.ids), e.truncated, e.original_length, e.unknown_tokens) for e in got] == [
        (e.ids, e.truncated, e.original_length, e.unknown_tokens) for e in want
    ]
