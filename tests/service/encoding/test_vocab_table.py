"""The vocab table: ids for many texts at once, equal to the regex and dict lookups."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import service.encoding.vocab_table as vocab_table
from sentiment_core.tokenizer import TOKEN_PATTERN, UNK_ID
from service.encoding.vocab_table import VocabTable

# Words around the table's key sizes (8 and 16 bytes), apostrophes, digits, underscores,
# punctuation tokens, and words longer than a key (looked up in a dict instead).
WORDS = [
    "a",
    "i",
    "movie",
    "don't",
    "rock'n'roll",
    "abcdefg",
    "abcdefgh",
    "abcdefghi",
    "abcdefghijklmno",
    "abcdefghijklmnop",
    "abcdefghijklmnopq",
    "incomprehensibilities",
    "42",
    "__init__",
    "!",
    ",",
    "'",
    "\x00",
    # Non-ASCII: symbols (IMDB's curly quotes, cp1252 leftovers), words, a long word.
    "“",
    "\x96",
    "£",
    "café",
    "naïve",
    "日本",
    "ünterschiedlichkeiten",
]
VOCAB = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
# Text made of those words, near misses (a letter more or less), separators of every kind.
PIECES = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(["abcdefgx", "abcdefghijklmnoX", "abcdefghijklmnopqr", "movies", "don", "t"]),
    st.sampled_from([" ", "\n", "\t", "\x1c", "'", "''", "!?", "a'", "'a", "x_y"]),
    st.text(alphabet=[chr(c) for c in range(128)], max_size=20),
    # Characters no word holds: word characters, symbols, spaces (\x85, NBSP, em space).
    st.sampled_from(["café", "ø", "жизнь", "—", "”", "\x85", "\xa0", "\u2003", "ª", "é"]),
    st.text(max_size=8),  # any Unicode (hypothesis leaves out lone surrogates)
)
TEXTS = st.lists(st.lists(PIECES, max_size=15).map("".join), max_size=6)


def lists(arrays: list[np.ndarray]) -> list[list[int]]:
    return [a.tolist() for a in arrays]


def expected(texts: list[str], vocab: dict[str, int]) -> list[list[int]]:
    # The pattern itself, compiled here: an independent reference.
    return [[vocab.get(w, UNK_ID) for w in re.findall(TOKEN_PATTERN, t)] for t in texts]


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_ids_equal_the_regex_and_dict_lookups(texts):
    assert lists(VocabTable(VOCAB, UNK_ID).ids(texts)) == expected(texts, VOCAB)


@settings(max_examples=100, deadline=None)
@given(TEXTS)
def test_a_crowded_table_is_still_exact(texts):
    """Almost no free slots: long probe chains, still the same ids."""
    table = VocabTable(VOCAB, UNK_ID, slots_per_word=1)
    assert table._max_probe > 0
    assert lists(table.ids(texts)) == expected(texts, VOCAB)


def test_known_cases():
    table = VocabTable(VOCAB, UNK_ID)
    ids = {w: VOCAB[w] for w in WORDS}
    got = table.ids(
        ["Movie movie don't", "abcdefghijklmnopq incomprehensibilities zzzzzzzzzzzzzzzzzzzz"]
    )
    assert all(isinstance(a, np.ndarray) and a.dtype == np.int32 for a in got)
    got = lists(got)
    assert got == [
        [UNK_ID, ids["movie"], ids["don't"]],  # (the table is for lower-cased text)
        [ids["abcdefghijklmnopq"], ids["incomprehensibilities"], UNK_ID],
    ]


def test_texts_never_join_across_their_boundary():
    table = VocabTable(VOCAB, UNK_ID)
    assert lists(table.ids(["don'", "t"])) == [
        [UNK_ID, VOCAB["'"]],  # "don" then a lone apostrophe (neither joins "t")
        [UNK_ID],
    ]
    assert lists(table.ids(["abcdefg", "h"])) == [[VOCAB["abcdefg"]], [UNK_ID]]


def test_empty_input_and_texts_without_tokens():
    table = VocabTable(VOCAB, UNK_ID)
    assert lists(table.ids([])) == []
    assert lists(table.ids(["", "   ", "\n"])) == [[], [], []]


def test_non_ascii_words_symbols_and_spaces():
    table = VocabTable(VOCAB, UNK_ID)
    assert lists(table.ids(["“café” naïve\xa0日本—x", "ünterschiedlichkeiten\u2003£\x96"])) == [
        [VOCAB["“"], VOCAB["café"], UNK_ID, VOCAB["naïve"], VOCAB["日本"], UNK_ID, UNK_ID],
        [VOCAB["ünterschiedlichkeiten"], VOCAB["£"], VOCAB["\x96"]],
    ]
    # A word with a character no vocabulary word holds is one unknown token, not split.
    assert lists(table.ids(["caféø naïvety"])) == [[UNK_ID, UNK_ID]]


def test_a_vocabulary_with_too_many_non_ascii_characters_takes_ascii_only():
    many = {chr(0x4E00 + k): 2 + k for k in range(200)}  # 200 CJK "words"
    table = VocabTable({"[PAD]": 0, "[UNK]": 1, "cafe": 300, **many}, UNK_ID)
    assert table.takes("cafe") and not table.takes("café")
    assert lists(table.ids(["cafe"])) == [[300]]
    with pytest.raises(ValueError):
        table.ids(["café"])


def test_new_characters_are_remembered_up_to_a_bound(monkeypatch):
    table = VocabTable(VOCAB, UNK_ID)
    known = len(table._byte_of)
    monkeypatch.setattr(vocab_table, "_MAX_CHARS", known + 1)
    assert table.takes("ø") and table.takes("øø")  # one new character: remembered
    assert not table.takes("ж")  # the bound is reached: refused, left to the regex
    assert lists(table.ids(["ø"])) == [[UNK_ID]]
    with pytest.raises(ValueError):
        table.ids(["ж"])


def test_a_table_needs_at_least_one_slot_per_word():
    with pytest.raises(ValueError, match="slots_per_word"):
        VocabTable(VOCAB, UNK_ID, slots_per_word=0)
