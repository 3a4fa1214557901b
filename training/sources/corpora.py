"""Readers for the public corpora in ../shared/data/sentiment-corpora (see its README):
SST-2 / SST-5, CR and MPQA (``label<space>text`` lines), Blitzer's Amazon reviews
(pseudo-XML) and the SemEval 2013-2016 tweets (``id<TAB>label<TAB>text``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from training.sources.base import (
    UNDECODABLE,
    RawRow,
    SourceError,
    SourceReport,
    SourceSpec,
    decode_line,
    file_codec,
    require_file,
    unescape_literals,
)

# The Penn Treebank tokenisation of SST/CR/MPQA, undone so that training sees what users
# type: "does n't" → "doesn't", "it 's" → "it's", -lrb- → "(", `` '' → '"'.
_PTB_CONTRACTION = re.compile(r"(\w) (n ?'t|'s|'re|'ve|'m|'ll|'d)\b", re.IGNORECASE)
_PTB_TOKENS = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "``": '"', "''": '"'}
_PTB_TOKEN = re.compile("|".join(map(re.escape, _PTB_TOKENS)), re.IGNORECASE)

_BLITZER_REVIEW = re.compile(r"<review>(.*?)</review>", re.DOTALL)
_BLITZER_FIELD = re.compile(r"<(asin|rating|title|review_text)>\s*(.*?)\s*</\1>", re.DOTALL)
_BLITZER_FILES = {"positive": "positive.review", "negative": "negative.review"}

_SPLIT_PRIORITY = {"test": 0, "validation": 1, "train": 2}  # a tweet in two files goes to the first


def detokenize_ptb(text: str) -> str:
    text = _PTB_TOKEN.sub(lambda m: _PTB_TOKENS[m.group(0).lower()], text)
    return _PTB_CONTRACTION.sub(lambda m: m.group(1) + m.group(2).replace(" ", ""), text)


def read_label_text(spec: SourceSpec, report: SourceReport) -> Iterator[RawRow]:
    """``label<space>text`` per line (SST-2, SST-5, CR, MPQA)."""
    for split, path in spec.files():
        for raw in require_file(path, spec.name).read_bytes().splitlines():
            line = decode_line(raw, spec.encoding, report)
            if line is None or not line.strip():
                continue
            label, _, text = line.strip().partition(" ")
            yield RawRow(detokenize_ptb(text), label, "", split)


def read_blitzer(spec: SourceSpec, report: SourceReport) -> Iterator[RawRow]:
    """Each path is a domain folder holding positive.review and negative.review.

    The files are pseudo-XML with no single root and bare ``&``: read with a regex, as
    latin-1. The label is the file's; the group is the product (ASIN), so that a product's
    reviews stay in one split. The title goes before the text: it often carries the verdict.
    """
    for split, folder in spec.files():
        if not folder.is_dir():
            found = "is a file" if folder.exists() else "not found"
            raise SourceError(f"{spec.name}: {folder} {found} (expected a Blitzer domain folder)")
        for label, name in _BLITZER_FILES.items():
            content = _blitzer_file(folder / name, spec)
            last = content[content.rfind("</review>") + 1 :]  # after the last review closed
            _count_unclosed(last.count("<review>"), report)
            for block in _BLITZER_REVIEW.findall(content):
                *unclosed, block = block.split("<review>")  # opened before it, never closed
                _count_unclosed(len(unclosed), report)
                if UNDECODABLE.search(block):
                    report.read += 1
                    report.drop(f"not {spec.encoding}")
                    continue
                fields = dict(_BLITZER_FIELD.findall(block))
                title, body = fields.get("title", ""), fields.get("review_text", "")
                text = f"{title}\n{body}" if title and body else body
                group = f"{folder.name}:{fields['asin']}" if fields.get("asin") else ""
                yield RawRow(unescape_literals(text), label, group, split)


def _count_unclosed(lost: int, report: SourceReport) -> None:
    """Reviews begun and never closed are lost: counted as bad rows."""
    if lost:
        report.read += lost
        report.drop("<review> without </review>", lost)


def _blitzer_file(path: Path, spec: SourceSpec) -> str:
    """The file as text; a byte the encoding cannot decode becomes a marker its review's
    check counts, instead of an error that would end the run."""
    codec = file_codec(spec.encoding)
    with require_file(path, spec.name).open(encoding=codec, errors="surrogateescape") as handle:
        return handle.read()


def read_semeval(spec: SourceSpec, report: SourceReport) -> Iterator[RawRow]:
    """``id<TAB>label<TAB>text`` (2016test has an extra, mostly empty column).

    Tweets are deduplicated by id over every file of the source: an id seen with two
    different labels is dropped everywhere; a repeated id keeps one row, in the test
    split if any of its files is a test file, so that no test tweet is trained on.
    """
    by_id: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for split, path in spec.files():
        for raw in require_file(path, spec.name).read_bytes().splitlines():
            line = decode_line(raw, spec.encoding, report)
            if line is None or not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 3:
                report.read += 1
                report.drop("too few columns")
                continue
            row = (parts[1], _strip_wrapping_quotes(parts[2]), split)
            if tweet_id := parts[0].strip():
                by_id[tweet_id].append(row)
            else:  # no id to deduplicate by: a row of its own, grouped by its text
                yield RawRow(unescape_literals(row[1]), row[0], "", split)
    for tweet_id, rows in by_id.items():
        if len({label.strip() for label, _, _ in rows}) > 1:
            report.read += len(rows)
            report.drop("tweet id with conflicting labels", len(rows))
            continue
        label, text, split = min(rows, key=lambda row: _SPLIT_PRIORITY[row[2]])
        if len(rows) > 1:
            report.read += len(rows) - 1
            report.drop("repeated tweet id", len(rows) - 1)
        yield RawRow(unescape_literals(text), label, f"tweet:{tweet_id}", split)


def _strip_wrapping_quotes(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text
