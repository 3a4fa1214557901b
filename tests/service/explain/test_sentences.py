"""service/explain/sentences.py: sentence spans with code-point offsets into the text as sent."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentiment_core.tokenizer import BREAK_PATTERN
from service.explain.sentences import _TITLE_END, _ends_with_title, sentence_spans


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dr. Smith loved it. I didn't.", ["Dr. Smith loved it.", "I didn't."]),
        ("The U.S. release was cut. Shame.", ["The U.S. release was cut.", "Shame."]),
        ("I give it 3.5 stars. Worth it.", ["I give it 3.5 stars.", "Worth it."]),
        ("Well... I don't know. Maybe.", ["Well... I don't know.", "Maybe."]),
        (
            '"Is this it?" she asked. He said "No." Then he left.',
            ['"Is this it?" she asked.', 'He said "No."', "Then he left."],
        ),
        (
            "They came at 7 p.m. with Mr. and Mrs. Jones, e.g. the score. It was fine.",
            ["They came at 7 p.m. with Mr. and Mrs. Jones, e.g. the score.", "It was fine."],
        ),
        ("no punctuation at all in this one", ["no punctuation at all in this one"]),
        # a title before a common word: sentencex alone splits after "Dr." and "Mr."
        ("I met Dr. Who yesterday. Great.", ["I met Dr. Who yesterday.", "Great."]),
        ("Great. Mr. Who was awful!", ["Great.", "Mr. Who was awful!"]),
        ("Great! MR. Who was awful", ["Great!", "MR. Who was awful"]),
        ("Ask Mr.\nWho cares.", ["Ask Mr.", "Who cares."]),  # a line break still ends one
        ("Welcome to St. Louis. Nice.", ["Welcome to St. Louis.", "Nice."]),
        ("Wow!!! Amazing?! Yes.", ["Wow!!!", "Amazing?!", "Yes."]),
        ("  Bad!  Bad!\n\nBad!  ", ["Bad!", "Bad!", "Bad!"]),
        # IMDB's line breaks end a sentence, punctuation or not, and are never part of one
        (
            "Great film!<br /><br />The acting was good.<br /><br />10/10",
            ["Great film!", "The acting was good.", "10/10"],
        ),
        ("Loved it<br />Hated the end<BR>", ["Loved it", "Hated the end"]),
        ("<br /><br />", []),
        ("   ", []),
    ],
)
def test_sentences(text, expected):
    assert sentences(text) == expected


def test_offsets_are_code_points_into_the_text_as_sent():
    text = "Café 😀 déjà vu. Ｅｍｉｌｅ loved it.<br />ﬁne ½ film!"
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == [
        "Café 😀 déjà vu.",
        "Ｅｍｉｌｅ loved it.",
        "ﬁne ½ film!",
    ]
    assert spans[1][0] == text.index("Ｅ")  # code points: the emoji counts once


_BREAK = re.compile(BREAK_PATTERN)
pieces = st.sampled_from(
    ["Good.", " ", "  ", "\n", "\n\n", "<br />", "<br /><br />", "Dr.", "3.5", "...", "!",
     "?", '"', "bad", "film", "😀", "é", "\u00a0", "U.S.", "e.g.", ":", "\t", "Ｆ"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.lists(pieces, max_size=30).map("".join), st.text(max_size=80)))
def test_spans_cover_every_visible_character_once(text):
    """In order, not overlapping, trimmed, and nothing but whitespace and <br /> left out."""
    spans = sentence_spans(text)
    masked = _BREAK.sub(lambda m: " " * len(m.group()), text)
    covered = set()
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        assert not masked[start].isspace() and not masked[end - 1].isspace()
        covered.update(range(start, end))
        previous_end = end
    visible = {i for i, c in enumerate(masked) if not c.isspace()}
    assert visible <= covered


titled = st.sampled_from(["Dr.", "mrs.", "Messrs.", "MR.", "x", "ab", " ", ".", "(", "\n", "Prof"])


@settings(max_examples=200, deadline=None)
@given(st.lists(titled, max_size=12).map("".join))
def test_the_title_check_reads_the_span_end_as_it_reads_the_span(masked):
    """Only a span's last characters are searched (linear joining); same answer as the
    whole span gives, for every span of the text."""
    for start in range(len(masked)):
        for end in range(start + 1, len(masked) + 1):
            whole = bool(_TITLE_END.search(masked[start:end]))
            assert _ends_with_title(masked, start, end, end) == whole, (start, end)
