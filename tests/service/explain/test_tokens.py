"""service/explain/tokens.py and occlusion.py against the committed bundle's tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentiment_core.tokenizer import UNK_ID
from service.explain.occlusion import leave_one_out, weights
from service.explain.tokens import encode_with_offsets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Don’t miss it!", [("Don’t", "don't"), ("miss", "miss"), ("it", "it"), ("!", "!")]),
        ("Café déjà vu", [("Café", "cafe"), ("déjà", "deja"), ("vu", "vu")]),
        ("a<br /><br />b", [("a", "a"), ("b", "b")]),
        ("😀 ﬁlm Ｇｒｅａｔ", [("😀", "[UNK]"), ("ﬁlm", "film"), ("Ｇｒｅａｔ", "great")]),
        ("naïve (e\u0301)", [("naïve", "naive"), ("(", "("), ("e\u0301", "e"), (")", ")")]),
        ("½", [("½", "1"), ("½", "⁄"), ("½", "2")]),  # one character, three tokens
        # marks without a combining class: vowel signs, a variation selector, a keycap
        ("फ़िल्म अच्छा है", [("फ़िल्म", "[UNK]"), ("अच्छा", "[UNK]"), ("है", "[UNK]")]),
        ("ภาพยนตร์ดี", [("ภาพยนตร์ดี", "[UNK]")]),
        ("1\ufe0f\u20e3 star", [("1\ufe0f\u20e3", "1"), ("star", "star")]),
    ],
)
def test_offsets_point_at_the_token_as_sent(bundle, text, expected):
    spans = encode_with_offsets(bundle.encoder.reference, text)
    assert [(text[s:e], t) for (s, e), t in zip(spans.offsets, spans.tokens, strict=True)] == (
        expected
    )


words = st.sampled_from(
    ["good", "Bad", "film", "Don’t", "café", "NAÏVE", "ﬁne", "½", "😀", "<br />", "e\u0301",
     "!", "...", "Ｆｉｌｍ", "İ", "ß", "’", "zzxqv", " ", "\n", "—", "It's", "अच्छा",
     "1\ufe0f\u20e3", "ดี"]
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.lists(words, min_size=1, max_size=25).map(" ".join), st.text(max_size=60)))
def test_offsets_map_each_token_back_to_its_own_characters(bundle, encoder, text):
    """Each token's slice of the original, normalised and split alone, yields that token
    (the word before the vocabulary lookup); ids equal the service's encoder."""
    tokenizer = bundle.encoder.reference.tokenizer
    spans = encode_with_offsets(bundle.encoder.reference, text)
    normalized = tokenizer.normalizer.normalize_str(text)
    words_seen = [w for w, _ in tokenizer.pre_tokenizer.pre_tokenize_str(normalized)]
    assert len(words_seen) == len(spans.offsets)
    for word, (start, end) in zip(words_seen, spans.offsets, strict=True):
        assert 0 <= start < end <= len(text)
        alone = tokenizer.normalizer.normalize_str(text[start:end])
        assert word in [w for w, _ in tokenizer.pre_tokenizer.pre_tokenize_str(alone)]
    if spans.ids.size:
        assert spans.ids.tolist() == list(encoder.encode([text])[0].ids)


def test_leave_one_out_deletes_each_token_once():
    ids = np.array([5, 6, 7], dtype=np.int32)
    assert [v.tolist() for v in leave_one_out(ids)] == [[6, 7], [5, 7], [5, 6]]
    assert [v.tolist() for v in leave_one_out(np.array([9], dtype=np.int32))] == [[UNK_ID]]


def test_weights_are_the_fall_in_the_predicted_labels_probability(bundle):
    manifest = bundle.manifest  # binary: one sigmoid column, P(positive)
    target, w = weights(manifest, [0.9], [[0.2], [0.95], [0.9]])
    assert manifest.labels[target] == "positive"
    assert w.tolist() == pytest.approx([0.7, -0.05, 0.0])
    target, w = weights(manifest, [0.1], [[0.6], [0.05]])
    assert manifest.labels[target] == "negative"  # P(negative) = 0.9, then 0.4 and 0.95
    assert w.tolist() == pytest.approx([0.5, -0.05])
