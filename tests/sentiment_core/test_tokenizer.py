"""The tokenizer definition and the reference encoder: golden cases and properties."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Regex, normalizers

from sentiment_core.encoder import TextEncoder, pad_batch
from sentiment_core.tokenizer import (
    BREAK_PATTERN,
    CONTROL_CHAR,
    LEGACY_BREAK_PATTERN,
    PAD_ID,
    UNK_ID,
    UNK_TOKEN,
    follows_our_rules,
    has_control_char,
    new_tokenizer,
    read_tokenizer,
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


# Strings built from what the break pattern looks at, so that near-misses are common.
_BREAK_ALPHABET = st.sampled_from(
    ["<", ">", "/", "b", "B", "r", "R", " ", "\t", "\n", "\u00a0", "x"]
)
_COMMITTED = Path(__file__).resolve().parents[2] / "models"


@settings(max_examples=3000, deadline=None)
@given(st.lists(_BREAK_ALPHABET, max_size=24).map("".join))
def test_break_pattern_replaces_what_the_legacy_one_did(text):
    """The linear-time pattern and the one older bundles carry match the same strings,
    in Python's ``re`` and in the Rust normalizer."""
    new, old = re.compile(BREAK_PATTERN), re.compile(LEGACY_BREAK_PATTERN)
    assert new.sub("|", text) == old.sub("|", text)
    rust_new = normalizers.Replace(Regex(BREAK_PATTERN), "|")
    rust_old = normalizers.Replace(Regex(LEGACY_BREAK_PATTERN), "|")
    assert rust_new.normalize_str(text) == rust_old.normalize_str(text)


def test_a_break_near_miss_with_many_spaces_is_one_linear_pass(encoder):
    """A hang guard, not a speed test (bench/hostile.py times it): the legacy pattern
    backtracked over every split of these spaces, some 10 s for 100,000 of them."""
    text = "<br" + " " * 100_000 + "x"
    started = time.perf_counter()
    assert tokens(encoder, text) == tokens(encoder, "<br x")
    assert time.perf_counter() - started < 1.0  # linear: a few ms
    assert len(tokens(encoder, "<br x")) == 3


# n2 was saved with the legacy pattern, g16 (trained since) with the linear one.
@pytest.mark.parametrize(
    ("bundle", "saved"),
    [("sentiment-general/g16", BREAK_PATTERN), ("sentiment-lstm/n2", LEGACY_BREAK_PATTERN)],
)
def test_a_committed_bundle_loads_with_the_linear_break_pattern(bundle, saved):
    path = _COMMITTED / bundle / "tokenizer.json"
    assert saved in json.loads(path.read_text())["normalizer"]["normalizers"][0]["pattern"]["Regex"]
    loaded = read_tokenizer(path)
    assert json.loads(loaded.to_str())["normalizer"]["normalizers"][0]["pattern"] == {
        "Regex": BREAK_PATTERN
    }
    assert follows_our_rules(loaded)
    assert loaded.encode("great<br /><br />film").tokens == ["great", "film"]


def test_a_new_tokenizer_saves_the_linear_break_pattern(encoder, tmp_path):
    path = tmp_path / "tokenizer.json"
    encoder.tokenizer.save(str(path))
    assert json.loads(path.read_text())["normalizer"]["normalizers"][0]["pattern"] == {
        "Regex": BREAK_PATTERN
    }


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


@pytest.mark.parametrize("policy", ["head", "tail", "head+tail"])
def test_arrays_are_truncated_as_lists_are(policy):
    items = list(range(2, 40))
    for max_length in (1, 2, 3, 8, 37, 38, 50):
        got = truncate(np.array(items, dtype=np.int32), max_length, policy)
        assert list(got) == list(truncate(items, max_length, policy)), max_length


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
