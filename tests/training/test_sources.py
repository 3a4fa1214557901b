"""Readers on tiny files the tests write: each corpus format, bad rows, label maps, splits."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.training.test_data import _files as imdb_files
from tests.training.test_data import make_tarball
from training.sources import (
    LoadOptions,
    SourceError,
    SourceSpec,
    default_label_map,
    load_corpus,
    require_rows,
)
from training.sources.base import SourceReport, to_examples, unescape_literals
from training.sources.corpora import detokenize_ptb

THREE = ("negative", "neutral", "positive")


def read(spec: SourceSpec, labels=THREE, **options):
    """One source through the whole loader; returns (corpus, its report)."""
    options = {"val_fraction": 0.0, "seed": 0, **options}
    corpus = load_corpus([spec], LoadOptions(tuple(labels), **options), np.random.default_rng(0))
    return corpus, corpus.reports[spec.name]


def spec(name: str, reader: str, labels=THREE, **fields) -> SourceSpec:
    if "label_map" not in fields:
        fields["label_map"], fields["skip_labels"] = default_label_map(reader, labels)
    return SourceSpec(name=name, reader=reader, **fields)


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def rows(corpus, split="train") -> list[tuple[str, str]]:
    return [(e.text, e.label) for e in getattr(corpus, split)]


# -- CSV / TSV / JSON Lines ------------------------------------------------------------------


def test_csv_columns_label_map_and_bad_rows_counted(tmp_path):
    csv = write(
        tmp_path / "reviews.csv",
        b"id,stars,review\n"
        b'1,5,"Great, really great"\n'
        b"2,1.0,Awful\n"
        b"3,3,It is a chair\n"
        b"4,4,\n"  # empty text
        b"5,7,Off the scale\n"  # unknown label
        b"6,2\n"  # too few columns
        b"7,1,caf\xe9 bad\n"  # not UTF-8
        b"\n",  # blank line: nothing
    )
    stars = {"negative": [1, 2], "neutral": 3, "positive": [4, 5]}
    mapping = {str(s): label for label, ss in stars.items() for s in np.atleast_1d(ss)}
    source = spec("shop", "csv", train=(csv,), text="review", label="stars", label_map=mapping)
    corpus, report = read(source)
    assert rows(corpus) == [
        ("Great, really great", "positive"),
        ("Awful", "negative"),
        ("It is a chair", "neutral"),
    ]
    assert report.read == 7
    assert report.dropped == Counter(
        {"empty text": 1, "unknown label '7'": 1, "too few columns": 1, "not utf-8": 1}
    )
    assert "dropped:" in report.summary() and "unknown label '7'" in report.summary()


def test_tsv_without_header_takes_column_numbers_and_a_group(tmp_path):
    tsv = write(
        tmp_path / "a.tsv", "u1\tpositive\tlovely\nu1\tnegative\tdreadful\nu2\tneutral\tok\n"
    )
    source = spec("t", "tsv", train=(tsv,), header=False, text=2, label=1, group=0)
    corpus, _ = read(source)
    assert rows(corpus) == [("lovely", "positive"), ("dreadful", "negative"), ("ok", "neutral")]
    assert [e.group for e in corpus.train] == ["t:u1", "t:u1", "t:u2"]


def test_missing_file_and_column_are_errors_naming_them(tmp_path):
    with pytest.raises(SourceError, match=r"nowhere\.csv not found"):
        read(spec("s", "csv", train=(tmp_path / "nowhere.csv",)))
    csv = write(tmp_path / "a.csv", "body,label\nnice,positive\n")
    with pytest.raises(SourceError, match=r"no column 'text' \(its columns: 'body', 'label'\)"):
        read(spec("s", "csv", train=(csv,)))
    with pytest.raises(SourceError, match=r"a\.csv has no header row \(its first line is empty"):
        read(spec("s", "csv", train=(write(tmp_path / "a.csv", ""),)))
    with pytest.raises(SourceError, match=r"s: .*/data is a folder; name the file in it"):
        (tmp_path / "data").mkdir()
        read(spec("s", "csv", train=(tmp_path / "data",)))


@pytest.mark.parametrize(
    ("content", "line"),
    [
        # A plain TSV line opening with a quote: read on, the rows after it were one field.
        ('text\tlabel\n"Best film\tpositive\ndull\tnegative\nsaid "wow"\tpositive\n', "2 .read to line 4"),
        ('text\tlabel\nfine\tpositive\n"open to the end\tnegative\nok\tneutral\n', "3 .read to line 4"),
    ],
)  # fmt: skip
def test_a_quote_that_breaks_the_quoting_is_an_error_naming_the_line(tmp_path, content, line):
    """The line named is where the broken row starts: where its stray quote is."""
    path = write(tmp_path / "q.tsv", content)
    with pytest.raises(
        SourceError, match=rf"q\.tsv: .*starting at line {line}.*quoting = \"none\""
    ):
        read(spec("t", "tsv", train=(path,)))
    corpus, report = read(spec("t", "tsv", train=(path,), quoting="none"))
    assert report.read == 3 and len(corpus.train) == 3  # every line a row, its quotes kept
    assert any(text.startswith('"') for text, _ in rows(corpus))


def test_a_field_over_the_size_limit_is_an_error_not_a_traceback(tmp_path):
    path = write(tmp_path / "big.csv", 'text,label\n"' + "x" * ((1 << 24) + 10) + '",positive\n')
    with pytest.raises(SourceError, match=r"big\.csv: .*field larger than field limit"):
        read(spec("s", "csv", train=(path,)))


def test_ambiguous_or_missing_columns_are_errors_naming_them(tmp_path):
    twice = write(tmp_path / "a.csv", "text,label,label\nnice,positive,negative\n")
    with pytest.raises(SourceError, match=r"a\.csv has two columns named 'label'"):
        read(spec("s", "csv", train=(twice,)))
    spaced = write(tmp_path / "b.csv", "text, label\nnice,positive\n")
    with pytest.raises(SourceError, match=r"its columns: 'text', ' label'"):
        read(spec("s", "csv", train=(spaced,)))
    with pytest.raises(SourceError, match=r"b\.csv has no column 5 .*its header has 2"):
        read(spec("s", "csv", train=(spaced,), text=0, label=5))


def test_a_csv_quote_error_names_the_row_and_what_csv_quoting_needs(tmp_path):
    path = write(tmp_path / "q.csv", 'text,label\nfine,positive\n"nice" ,positive\n')
    with pytest.raises(SourceError, match=r"starting at line 3 .*must close with one just befo"):
        read(spec("s", "csv", train=(path,)))


def test_true_and_false_labels_are_one_label_whatever_their_case(tmp_path):
    """pandas writes True/False; JSON and TOML write true/false."""
    path = write(tmp_path / "b.csv", "text,label\nnice,True\nbad,FALSE\nok,false\n")
    mapping = {"true": "positive", "false": "negative"}
    corpus, report = read(spec("s", "csv", train=(path,), label_map=mapping))
    assert rows(corpus) == [("nice", "positive"), ("bad", "negative"), ("ok", "negative")]
    assert not report.dropped


def test_a_tab_separated_file_read_as_csv_is_told_to_use_the_tsv_reader(tmp_path):
    path = write(tmp_path / "a.csv", "review\tstars\nnice\t5\n")
    with pytest.raises(SourceError, match=r"its columns: 'review\\tstars'\); .*reader = \"tsv\""):
        read(spec("s", "csv", train=(path,), text="review", label="stars"))


def test_jsonl_text_that_is_not_a_string_and_undecodable_lines_are_bad_rows(tmp_path):
    lines = [
        b'{"text": {"a": 1}, "label": "positive"}',
        b'{"text": ["x", "y"], "label": "negative"}',
        b'{"text": true, "label": "neutral"}',
        b'{"text": 5, "label": "positive"}',  # a number reads as text, as in a CSV
        b'{"text": "caf\xe9", "label": "positive"}',
        b'{"text": "fine", "label": true}',
    ]
    path = write(tmp_path / "a.jsonl", b"\n".join(lines) + b"\n")
    corpus, report = read(spec("j", "jsonl", train=(path,), label_map={"true": "positive"}))
    assert rows(corpus) == [("fine", "positive")]
    assert report.read == 6
    assert report.dropped == Counter(
        {
            "text is not a string (a JSON object)": 1,
            "text is not a string (a JSON array)": 1,
            "text is not a string (a JSON boolean)": 1,
            "unknown label 'positive'": 1,
            "not utf-8": 1,
        }
    )


@pytest.mark.parametrize("reader", ["csv", "jsonl", "sst2"])
def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column(tmp_path, reader):
    # Excel saves "CSV UTF-8" with a BOM; before the fix its first column was "\ufefftext".
    content = {
        "csv": "text,label\nnice café,positive\n",
        "jsonl": json.dumps({"text": "nice café", "label": "positive"}) + "\n",
        "sst2": "1 nice café\n",
    }[reader]
    path = write(tmp_path / "a.txt", "\ufeff".encode() + content.encode())
    corpus, report = read(spec("s", reader, train=(path,)))
    assert rows(corpus) == [("nice café", "positive")] and not report.dropped


def test_jsonl_keys_bad_lines_and_missing_key(tmp_path):
    lines = [
        json.dumps({"body": "Fine product", "y": "positive", "user": 1}),
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"body": "Broke at once", "y": "negative", "user": 2}),
        json.dumps({"body": "no label here", "user": 3}),
    ]
    path = write(tmp_path / "a.jsonl", "\n".join(lines) + "\n")
    source = spec("j", "jsonl", train=(path,), text="body", label="y", group="user")
    corpus, report = read(source)
    assert rows(corpus) == [("Fine product", "positive"), ("Broke at once", "negative")]
    assert report.dropped == Counter(
        {"not valid JSON": 1, "not a JSON object": 1, "empty label": 1}
    )
    with pytest.raises(SourceError, match=r"no key 'text' \(its keys: body, y, user\)"):
        read(spec("j", "jsonl", train=(path,)))


def test_jsonl_keys_are_checked_in_every_file_not_only_the_first(tmp_path):
    """A test file with other keys than the train file once read as 30 'empty text' rows."""
    good = write(tmp_path / "train.jsonl", json.dumps({"review": "Fine", "y": "positive"}) + "\n")
    other = write(tmp_path / "test.jsonl", json.dumps({"body": "Fine", "y": "positive"}) + "\n")
    source = spec("j", "jsonl", train=(good,), test=(other,), text="review", label="y")
    with pytest.raises(SourceError, match=r"test.jsonl.*no key 'review' \(its keys: body, y\)"):
        read(source)


# -- SST, CR, MPQA ---------------------------------------------------------------------------


def test_sst5_maps_to_three_classes_and_a_binary_model_leaves_neutral_out(tmp_path):
    path = write(tmp_path / "fine", "0 vile\n1 weak\n2 a film\n3 good\n4 superb\n9 odd\n")
    corpus, report = read(spec("sst5", "sst5", train=(path,)))
    assert [label for _, label in rows(corpus)] == [
        "negative", "negative", "neutral", "positive", "positive",
    ]  # fmt: skip
    assert report.dropped == Counter({"unknown label '9'": 1})
    binary = ("negative", "positive")
    corpus, report = read(spec("sst5", "sst5", labels=binary, train=(path,)), labels=binary)
    assert len(corpus.train) == 4 and report.skipped == Counter({"label 2": 1})
    assert "unknown label '9'" in report.dropped


def test_ptb_tokenisation_is_undone():
    assert detokenize_ptb("it does n't work -lrb- sadly -rrb- , it 's `` fine ''") == (
        "it doesn't work ( sadly ) , it's \" fine \""
    )
    assert detokenize_ptb("does n 't play ; i 've tried") == "doesn't play ; i've tried"
    assert detokenize_ptb("ca n't , wo n't") == "can't , won't"


@pytest.mark.parametrize("reader", ["cr", "mpqa", "sst2"])
def test_polar_label_text_lines(tmp_path, reader):
    """CR, MPQA and SST-2: one "0|1 text" per line, PTB tokens undone, bad rows counted."""
    lines = "0 the remote does n't work\n1 great sound\n1   \n2 a third label\n"
    path = write(tmp_path / "lines", lines)
    corpus, report = read(spec(reader, reader, train=(path,)))
    assert rows(corpus) == [("the remote doesn't work", "negative"), ("great sound", "positive")]
    assert report.dropped == Counter({"empty text": 1, "unknown label '2'": 1})


# -- Blitzer ---------------------------------------------------------------------------------

BLITZER = """<review>
<unique_id>
a:1
</unique_id>
<asin>
B0001
</asin>
<rating>
{rating}
</rating>
<title>
{title}
</title>
<review_text>
{text}
</review_text>
</review>
"""


def test_blitzer_pseudo_xml_latin1_ampersands_and_groups(tmp_path):
    domain = tmp_path / "kitchen"
    domain.mkdir()
    positive = BLITZER.format(rating="5.0", title="Love it", text="Pots & pans &amp; caf\xe9")
    negative = BLITZER.format(rating="1.0", title="", text="Broke\x07 in a week")
    write(domain / "positive.review", ("<reviews>\n" + positive).encode("latin-1"))
    write(domain / "negative.review", (negative + negative.replace("B0001", "B0002")).encode())
    corpus, report = read(spec("blitzer", "blitzer", test=(domain,), encoding="latin-1"))
    assert rows(corpus, "test") == [
        ("Love it\nPots & pans & café", "positive"),
        ("Broke  in a week", "negative"),
        ("Broke  in a week", "negative"),
    ]
    assert [e.group for e in corpus.test] == ["kitchen:B0001", "kitchen:B0001", "kitchen:B0002"]
    assert report.read == 3 and not report.dropped


def test_blitzer_missing_domain_names_it(tmp_path):
    with pytest.raises(SourceError, match=r"books.*not found"):
        read(spec("blitzer", "blitzer", train=(tmp_path / "books",)))
    file = write(tmp_path / "positive.review", "")
    with pytest.raises(SourceError, match=r"positive\.review is a file \(expected a Blitzer"):
        read(spec("blitzer", "blitzer", train=(file,)))


def test_blitzer_undecodable_and_unclosed_reviews_are_counted(tmp_path):
    """Once a UnicodeDecodeError ended the run, and an unclosed review vanished."""
    domain = tmp_path / "kitchen"
    domain.mkdir()
    good = BLITZER.format(rating="5.0", title="Good", text="Works well")
    unclosed = good.replace("</review>", "").replace("Works well", "Lost one").encode()
    bad = BLITZER.format(rating="5.0", title="Bad bytes", text="caf\xe9").encode("latin-1")
    lost_bad = bad.replace(b"</review>", b"")  # its bytes must not drop the review after it
    write(domain / "positive.review", unclosed * 2 + lost_bad + good.encode() + bad + unclosed)
    write(domain / "negative.review", BLITZER.format(rating="1.0", title="", text="Broke"))
    corpus, report = read(spec("blitzer", "blitzer", test=(domain,), encoding="utf-8"))
    assert rows(corpus, "test") == [("Good\nWorks well", "positive"), ("Broke", "negative")]
    assert report.read == 7  # 3 unclosed before a review, 1 at the end, 1 bad, 2 good
    assert report.dropped == Counter({"<review> without </review>": 4, "not utf-8": 1})


# -- SemEval ---------------------------------------------------------------------------------


def test_semeval_dedup_conflicts_unescaping_and_the_extra_column(tmp_path):
    train = write(
        tmp_path / "2013train.tsv",
        "1\tpositive\tIt\\u2019s great\\u002c really\n"
        "2\tnegative\tbad &amp; worse\n"
        "3\tneutral\tsame id, other label\n"
        "4\tneutral\ton both sides\n"
        "4\tneutral\ton both sides\n"
        '5\tpositive\t"\\""""Quoted\\"""" fun"\n'
        "6\tpositive\n",
    )
    test = write(
        tmp_path / "2016test.tsv",
        "3\tpositive\tsame id, other label\t\n4\tneutral\ton both sides\t\n7\tnegative\tugh &lt;3\t\n",
    )
    corpus, report = read(spec("semeval", "semeval", train=(train,), test=(test,)))
    assert rows(corpus) == [
        ("It’s great, really", "positive"),
        ("bad & worse", "negative"),
        ('"Quoted" fun', "positive"),
    ]
    assert rows(corpus, "test") == [("on both sides", "neutral"), ("ugh <3", "negative")]
    assert report.dropped == Counter(
        {"tweet id with conflicting labels": 2, "repeated tweet id": 2, "too few columns": 1}
    )
    assert report.read == 10 and [e.group for e in corpus.test] == ["tweet:4", "tweet:7"]


def test_semeval_rows_without_an_id_are_rows_of_their_own(tmp_path):
    """Once pooled under the id "": two were dropped as one tweet with two labels."""
    path = write(tmp_path / "t.tsv", "\tpositive\tgreat\n\tnegative\tawful\n\tneutral\tok\n")
    corpus, report = read(spec("semeval", "semeval", train=(path,)))
    assert rows(corpus) == [("great", "positive"), ("awful", "negative"), ("ok", "neutral")]
    assert report.read == 3 and not report.dropped


def test_unescape_literals():
    assert unescape_literals("\\ud83d\\ude00 \\u00e9t\\u00e9") == "😀 été"
    assert unescape_literals("a &amp; b &quot;c&quot; & d") == 'a & b "c" & d'


# -- IMDB, splits, sampling, the test-overlap guard ---------------------------------------------


def test_imdb_groups_by_movie_and_keeps_its_test_split(tmp_path):
    archive = make_tarball(tmp_path / "imdb.tar.gz", imdb_files())
    source = spec("imdb", "imdb", path=archive)
    corpus, report = read(source, labels=("negative", "positive"), val_fraction=0.3)
    assert {e.group for e in corpus.train}.isdisjoint({e.group for e in corpus.validation})
    assert corpus.validation and len(corpus.train) + len(corpus.validation) == 4
    assert len(corpus.test) == 2 and report.kept["test"] == 2
    assert {e.group for e in corpus.test} == {"tt0000009"}


def test_validation_is_held_out_by_group(tmp_path):
    lines = "".join(f"g{i % 10}\tpositive\ttext {i}\n" for i in range(200))
    path = write(tmp_path / "a.tsv", lines)
    source = spec("t", "tsv", train=(path,), header=False, text=2, label=1, group=0)
    corpus, _ = read(source, val_fraction=0.2)
    held = {e.group for e in corpus.validation}
    assert held and held.isdisjoint({e.group for e in corpus.train})
    assert len(corpus.validation) == 40  # two of the ten groups, 20 rows each


def test_sample_rate_weight_limit_and_test_overlap(tmp_path):
    train = write(
        tmp_path / "train.csv", "text,label\n" + "".join(f"t{i},positive\n" for i in range(10))
    )
    test = write(tmp_path / "test.csv", "text,label\nT3,positive\n")
    half = spec("s", "csv", train=(train,), test=(test,), sample=0.5)
    assert len(read(half)[0].train) == 5
    twice = spec("s", "csv", train=(train,), sample=2.5)
    assert len(read(twice)[0].train) == 25
    corpus, report = read(spec("s", "csv", train=(train,), test=(test,)), drop_test_overlap=True)
    assert "t3" not in {e.text for e in corpus.train} and len(corpus.train) == 9
    assert report.dropped == Counter({"text also in a test split (train)": 1})
    limited, _ = read(spec("s", "csv", train=(train,)), limit=4)
    assert len(limited.train) == 4


def test_no_training_rows_is_an_error_with_the_counts(tmp_path):
    path = write(tmp_path / "a.csv", "text,label\n,positive\nx,maybe\n")
    corpus, _ = read(spec("s", "csv", train=(path,)))
    with pytest.raises(SourceError, match=r"no train rows: s: 2 rows read.*1 empty text"):
        require_rows(corpus, THREE)


def test_a_label_no_training_row_maps_to_is_an_error_naming_it(tmp_path):
    # A 1-5 star column whose map forgot 3 → neutral: a softmax class that never trains.
    path = write(tmp_path / "a.csv", "text,stars\ngood,5\nbad,1\nmeh,3\nfine,4\n")
    stars = {"1": "negative", "2": "negative", "4": "positive", "5": "positive"}
    files = {"train": (path,), "validation": (path,)}
    corpus, _ = read(spec("s", "csv", label="stars", label_map=stars, skip_labels=(), **files))
    with pytest.raises(SourceError, match=r"no training rows for label\(s\) 'neutral': check "
                       r"the label maps; s: 8 rows read.*2 unknown label '3'"):  # fmt: skip
        require_rows(corpus, THREE)


def test_rows_keep_their_split_and_source():
    report = SourceReport("x")
    source = spec("x", "csv")
    from training.sources.base import RawRow

    out = list(to_examples(source, [RawRow(" hi\x00there ", "positive", "", "test")], report))
    assert out[0].text == "hi there" and out[0].split == "test" and out[0].source == "x"
    assert out[0].group == "text:hi there"


def test_class_weights_pooled_and_per_source():
    from training.sources.base import Example
    from training.sources.splits import class_weights

    def rows(source, counts):
        return [
            Example("t", label, source, "", "train")
            for label, n in counts.items()
            for _ in range(n)
        ]

    examples = rows("tweets", {"negative": 1, "neutral": 2, "positive": 1}) + rows(
        "reviews", {"negative": 2, "positive": 2}
    )
    weights = {"tweets": 1.0, "reviews": 1.0}
    assert class_weights(examples, THREE, weights, "none")["tweets"] == dict.fromkeys(THREE, 1.0)
    pooled = class_weights(examples, THREE, weights, "balanced")
    assert pooled["tweets"] == pooled["reviews"] == {
        "negative": 8 / 9, "neutral": 8 / 6, "positive": 8 / 9,
    }  # fmt: skip
    per_source = class_weights(examples, THREE, weights, "balanced-per-source")
    assert per_source["tweets"] == {"negative": 4 / 3, "neutral": 4 / 6, "positive": 4 / 3}
    assert per_source["reviews"] == {"negative": 1.0, "positive": 1.0}  # no neutral to lean to


def test_a_source_overrides_the_class_weight_rule():
    from training.sources.base import Example
    from training.sources.splits import class_weights

    examples = [
        Example("t", label, source, "", "train")
        for source, counts in {
            "tweets": {"negative": 1, "neutral": 2, "positive": 1},
            "snippets": {"negative": 1, "neutral": 1, "positive": 2},
        }.items()
        for label, n in counts.items()
        for _ in range(n)
    ]
    weights = {"tweets": 1.0, "snippets": 1.0}
    natural = class_weights(examples, THREE, weights, "balanced-per-source", {"snippets": "none"})
    assert natural["snippets"] == dict.fromkeys(THREE, 1.0)
    assert natural["tweets"] == {"negative": 4 / 3, "neutral": 4 / 6, "positive": 4 / 3}
    # Pooled balancing counts only the sources that follow it; "balanced" balances one source.
    mixed = class_weights(examples, THREE, weights, "balanced", {"snippets": "balanced"})
    assert mixed["tweets"] == {"negative": 4 / 3, "neutral": 4 / 6, "positive": 4 / 3}
    assert mixed["snippets"] == {"negative": 4 / 3, "neutral": 4 / 3, "positive": 4 / 6}
    assert class_weights(examples, THREE, weights, "none", {"tweets": "balanced"})["snippets"] == (
        dict.fromkeys(THREE, 1.0)
    )
