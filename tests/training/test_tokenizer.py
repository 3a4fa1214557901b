"""The shared tokenizer: golden cases and properties."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

import service.tokenizer as tokenizer_module
from service.tokenizer import (
    _ASCII_TOKEN,
    _TOKEN,
    _TOKEN_PATTERN,
    CONTROL_CHAR,
    PAD_ID,
    UNK_ID,
    UNK_TOKEN,
    TextEncoder,
    has_control_char,
    new_tokenizer,
    pad_batch,
    train_tokenizer,
    truncate,
)

CORPUS = [
    "I loved this movie! Don't miss it.",
    "I hated this movie. It isn't good, it's bad!!",
    "A café scene, naïve but fine.<br /><br />The end",
    "Great acting, great story; great film.",
] * 3


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(train_tokenizer(CORPUS, vocab_size=200, min_frequency=1), max_length=8)


def tokens(encoder: TextEncoder, text: str) -> list[str]:
    return encoder.encode([text])[0].tokens


def test_special_ids_are_fixed(encoder):
    assert encoder.tokenizer.token_to_id("[PAD]") == PAD_ID == 0
    assert encoder.tokenizer.token_to_id(UNK_TOKEN) == UNK_ID == 1


def test_lowercase_and_unknown(encoder):
    assert tokens(encoder, "I LOVED zebras") == ["i", "loved", UNK_TOKEN]


def test_special_token_text_is_just_text(encoder):
    # A review that literally contains "[PAD]" must not be encoded as padding.
    encoded = encoder.encode(["[PAD] [UNK] great"])[0]
    assert PAD_ID not in encoded.ids
    assert encoded.tokens[-1] == "great"


def test_html_breaks_become_spaces(encoder):
    assert tokens(encoder, "great<br /><br />film") == ["great", "film"]
    assert tokens(encoder, "great<br/>film<BR>story") == ["great", "film", "story"]


def test_apostrophes_keep_contractions_whole(encoder):
    assert tokens(encoder, "Don't") == ["don't"]
    # Curly and back-tick apostrophes are the same word.
    assert tokens(encoder, "Don’t") == tokens(encoder, "Don`t") == ["don't"]


def test_punctuation_is_one_token_per_character(encoder):
    assert tokens(encoder, "bad!!") == ["bad", "!", "!"]
    assert tokens(encoder, "great; film.") == ["great", ";", "film", "."]


def test_accents_and_compatibility_forms_fold(encoder):
    assert tokens(encoder, "Café naïve") == ["cafe", "naive"]
    assert tokens(encoder, "ＧＲＥＡＴ ﬁlm") == ["great", "film"]  # full-width, ligature


def test_non_ascii_spaces_separate_words(encoder):
    for space in ["\u00a0", "\u2009", "\u3000", "\t", "\n"]:
        assert tokens(encoder, f"great{space}film") == ["great", "film"], repr(space)


def test_empty_and_tokenless_text_become_one_unknown(encoder):
    for text in ["", "   ", "\u0301"]:
        encoded = encoder.encode([text])[0]
        assert encoded.ids == [UNK_ID] and encoded.tokens == [UNK_TOKEN]
        assert not encoded.truncated


def test_long_text_truncates_head_plus_tail(encoder):
    words = [f"w{i}" for i in range(100)]
    encoded = encoder.encode([" ".join(words)])[0]
    assert encoded.truncated and encoded.original_length == 100
    assert len(encoded.ids) == encoder.max_length == 8
    # Unknown words all map to [UNK]; the policy is checked on the tokens themselves.
    assert truncate(words, 8, "head+tail") == words[:2] + words[-6:]
    assert truncate(words, 8, "head") == words[:8]
    assert truncate(words, 8, "tail") == words[-8:]


def test_very_long_text_is_fast_and_bounded(encoder):
    encoded = encoder.encode(["great film " * 50_000])[0]
    assert len(encoded.ids) == 8 and encoded.truncated


def test_saved_tokenizer_encodes_identically(encoder, tmp_path):
    path = tmp_path / "tokenizer.json"
    encoder.tokenizer.save(str(path))
    json.loads(path.read_text())  # a standard JSON file
    reloaded = TextEncoder.from_file(path, encoder.max_length, encoder.truncation)
    assert reloaded.encode_ids(CORPUS) == encoder.encode_ids(CORPUS)


def test_pad_batch_post_pads_with_zero():
    batch = pad_batch([[5, 6, 7], [8]])
    assert batch.dtype.name == "int32"
    assert batch.tolist() == [[5, 6, 7], [8, 0, 0]]


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="truncation"):
        TextEncoder(new_tokenizer(), 10, "middle")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_ids_in_range_deterministic_and_bounded(encoder, text):
    first = encoder.encode([text])[0]
    again = encoder.encode([text])[0]
    assert first == again
    assert 1 <= len(first.ids) <= encoder.max_length
    assert all(0 < i < encoder.vocab_size for i in first.ids)  # never the padding id
    assert len(first.ids) == len(first.tokens)
    assert first.unknown_tokens == sum(1 for t in first.tokens if t == UNK_TOKEN)


# -- the Python path must give exactly what the Rust tokenizer gives --------------------
def rust_path(encoder: TextEncoder, text: str):
    """The reference: tokenizer.json through the Rust library, then our truncation."""
    enc = encoder.tokenizer.encode(text, add_special_tokens=False)
    return encoder._finish(enc.ids, enc.tokens, with_tokens=True)


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
    assert encoder._normalize(text) is not None  # printable ASCII always takes the Python path
    assert encoder.encode([text])[0] == rust_path(encoder, text)
    assert encoder.encode([text], with_tokens=False)[0].ids == rust_path(encoder, text).ids


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(ASCII_PIECES, max_size=12).map("".join), min_size=1, max_size=8))
def test_many_texts_at_once_take_the_vocab_table_and_equal_the_rust_tokenizer(encoder, texts):
    """A call with enough text encodes its ASCII texts' ids in numpy (service/vocab_table.py)."""
    batch = [*texts, "A long review, don't you think? " * 140]
    assert sum(map(len, batch)) >= tokenizer_module._TABLE_MIN_CHARS
    calls = []
    table_ids = encoder._table.ids
    encoder._table.ids = lambda part: calls.append(len(part)) or table_ids(part)
    try:
        got = encoder.encode(batch, with_tokens=False)
    finally:
        del encoder._table.ids
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
    assert _ASCII_TOKEN.findall(text) == re.findall(_TOKEN_PATTERN, text)


def test_a_big_call_is_cut_into_parts_and_keeps_its_order(encoder, monkeypatch):
    texts = [f"review {k}: " + "great film, don't miss it! " * (k % 7) for k in range(300)]
    want = [list(e.ids) for e in encoder.encode(texts, with_tokens=False)]  # (one part: 22k)
    monkeypatch.setattr(tokenizer_module, "_TABLE_MAX_CHARS", 500)
    assert [list(e.ids) for e in encoder.encode(texts, with_tokens=False)] == want
    assert want == [rust_path(encoder, t).ids for t in texts]


@pytest.mark.parametrize("policy", ["head", "tail", "head+tail"])
def test_arrays_are_truncated_as_lists_are(policy):
    items = list(range(2, 40))
    for max_length in (1, 2, 3, 8, 37, 38, 50):
        got = truncate(np.array(items, dtype=np.int32), max_length, policy)
        assert list(got) == list(truncate(items, max_length, policy)), max_length


def test_the_tables_ids_are_read_only_views(encoder):
    untruncated = TextEncoder(encoder.tokenizer, max_length=10_000)
    texts = ["A long review, don't you think? " * 140, "another one " * 50]
    got = untruncated.encode(texts, with_tokens=False)
    assert not any(e.truncated for e in got)
    assert all(isinstance(e.ids, np.ndarray) and not e.ids.flags.writeable for e in got)


def test_parts_hold_at_most_max_chars_or_one_text():
    items = list(enumerate(["a" * 10, "", "b" * 30, "c" * 5, "d" * 6]))
    parts = list(tokenizer_module._chunks(items, 12))
    assert parts == [[items[0], items[1]], [items[2]], [items[3], items[4]]]
    assert list(tokenizer_module._chunks([], 12)) == []


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=[chr(c) for c in range(128)], max_size=60))
def test_the_ascii_token_pattern_matches_the_unicode_one_on_any_ascii_text(text):
    """``_ASCII_TOKEN`` spells out ``\\w`` and ``\\s`` for ASCII; every ASCII char, controls too."""
    assert _ASCII_TOKEN.findall(text) == _TOKEN.findall(text) == re.findall(_TOKEN_PATTERN, text)
    every_char = "".join(chr(c) for c in range(128)) + " a'b ''c' d_e'9 " + text
    assert _ASCII_TOKEN.findall(every_char) == _TOKEN.findall(every_char)


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
    assert (encoder._normalize(text) is not None) == python
    assert encoder.encode([text])[0] == rust_path(encoder, text)


def test_folding_new_characters_is_bounded_per_text_and_in_total(monkeypatch):
    """Rare characters cost Python ~8 µs each the first time: beyond a budget, Rust."""
    import service.tokenizer as module

    fresh = TextEncoder(train_tokenizer(CORPUS, vocab_size=200, min_frequency=1), max_length=8)
    many = "".join(chr(0x4E00 + i) for i in range(module._NEW_FOLDS_PER_TEXT + 1))  # CJK
    assert fresh._normalize(many) is None  # too many unseen characters for one text
    assert fresh.encode([many])[0] == rust_path(fresh, many)
    few = many[: module._NEW_FOLDS_PER_TEXT]
    assert fresh._normalize(few) is not None  # within the budget: folded and remembered
    assert fresh._normalize(many) is not None  # now only one of them is new
    monkeypatch.setattr(module, "_FOLD_CACHE_SIZE", len(fresh._folds))  # memory full
    assert fresh._normalize(many + "é") is None  # a character never seen: Rust
    assert fresh.encode([many + "é"])[0] == rust_path(fresh, many + "é")
    assert fresh._normalize(many) is not None  # characters already known: still Python


def test_mixed_requests_keep_their_order(encoder):
    texts = ["I loved it", "café naïve", "great film!", "Ｆｉｎｅ film", "", "straße 中文"]
    assert encoder.encode(texts) == [rust_path(encoder, t) for t in texts]


@pytest.mark.parametrize("text", ["vertical\x0btab", "form\x0cfeed", "x\x1cy", "nul\x00"])
def test_control_characters_take_the_rust_path(encoder, text):
    assert encoder._normalize(text) is None  # not eligible for the Python path
    assert encoder.encode([text])[0] == rust_path(encoder, text)


def test_has_control_char_answers_as_the_regex_on_every_code_point():
    """The fast check (ASCII bytes, translate) against ``CONTROL_CHAR``: each character
    alone, and inside text with non-ASCII letters and a lone surrogate around it."""
    for code in range(0x110000):
        char = chr(code)
        want = CONTROL_CHAR.search(char) is not None
        assert has_control_char(char) == want, hex(code)
        if code % 97 == 0 or code < 0x100:
            text = f"café \ud800 {char} 中文"
            assert has_control_char(text) == (CONTROL_CHAR.search(text) is not None), hex(code)


def test_tab_newline_and_return_take_the_python_path_and_agree(encoder):
    text = "tab\there\nnew line\r\nand <BR/>more"
    assert encoder._normalize(text) is not None
    assert encoder.encode([text])[0] == rust_path(encoder, text)


def test_a_tokenizer_with_other_rules_is_always_encoded_by_rust(encoder):
    """An edited tokenizer.json (here: no lower-casing) must not get our Python rules."""
    edited = json.loads(encoder.tokenizer.to_str())
    edited["normalizer"]["normalizers"] = [
        n for n in edited["normalizer"]["normalizers"] if n["type"] != "Lowercase"
    ]
    other = TextEncoder(Tokenizer.from_str(json.dumps(edited)), max_length=8)
    assert not other._python_path and encoder._python_path
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
    table_ids = encoder._table.ids
    encoder._table.ids = lambda part: calls.extend(part) or table_ids(part)
    try:
        got = encoder.encode(batch, with_tokens=False)
    finally:
        del encoder._table.ids
    assert any(not text.isascii() for text in calls)  # the long review, at least
    want = [rust_path(encoder, text) for text in batch]
    assert [(list(e.ids), e.truncated, e.original_length, e.unknown_tokens) for e in got] == [
        (e.ids, e.truncated, e.original_length, e.unknown_tokens) for e in want
    ]
