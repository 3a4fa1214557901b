"""What every reader shares: the example, the source's description, cleaning, label maps,
and the count of rows kept and dropped (by reason), which the job reports.
"""

from __future__ import annotations

import codecs
import html
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sentiment_core.tokenizer import CONTROL_CHAR
from training.data import DatasetError

SPLITS = ("train", "validation", "test")
# What errors="surrogateescape" makes of the bytes an encoding cannot decode: a reader
# counts the row holding one instead of ending the file on the first.
UNDECODABLE = re.compile("[\udc80-\udcff]")


class SourceError(DatasetError):
    """A source's file or column is missing, or its description is wrong (exit code 2)."""


@dataclass(frozen=True, slots=True)
class RawRow:
    """A row as a reader found it: the label is still the source's own."""

    text: str
    label: str
    group: str  # rows sharing a group stay in one split ("" = the text itself)
    split: str


@dataclass(frozen=True, slots=True)
class Example:
    """A row ready for training or scoring: its label is one of the model's."""

    text: str
    label: str
    source: str
    group: str
    split: str


@dataclass(frozen=True)
class SourceSpec:
    """One source of a training config (``[[sources]]`` in the TOML file)."""

    name: str
    reader: str
    train: tuple[Path, ...] = ()
    validation: tuple[Path, ...] = ()
    test: tuple[Path, ...] = ()
    path: Path | None = None  # imdb: the archive (None = --data / $SENTIMENT_DATA / shared)
    imdb_test: bool = True  # imdb: score the archive's test split
    text: str | int = "text"  # column name (or index, for files without a header)
    label: str | int = "label"
    group: str | int | None = None  # column whose value groups rows (None = the text)
    header: bool = True
    quoting: str = "csv"  # csv/tsv: "none" reads a quote as an ordinary character
    encoding: str = "utf-8"
    label_map: dict[str, str] = field(default_factory=dict)  # source label -> model label
    skip_labels: tuple[str, ...] = ()  # source labels left out on purpose (not "bad")
    weight: float = 1.0  # multiplies the loss of this source's examples
    sample: float = 1.0  # share of its training rows used (above 1: repeated)
    val_fraction: float | None = None  # None = the job's --val-fraction
    class_weight: str | None = None  # "none" / "balanced" for this source (None = the job's)

    def files(self) -> Iterator[tuple[str, Path]]:
        for split in SPLITS:
            for path in getattr(self, split):
                yield split, path


@dataclass
class SourceReport:
    """Rows read, kept per split, and dropped per reason, for one source."""

    source: str
    read: int = 0
    kept: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # labels left out on purpose

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def as_dict(self) -> dict:
        return {
            "read": self.read,
            "kept": dict(self.kept),
            "dropped": dict(self.dropped),
            "skipped_labels": dict(self.skipped),
        }

    def summary(self) -> str:
        kept = ", ".join(f"{n} {split}" for split, n in self.kept.items()) or "nothing"
        line = f"{self.source}: {self.read} rows read, kept {kept}"
        if self.skipped:
            line += "; left out by label: " + _counts(self.skipped)
        if self.dropped:
            line += "; dropped: " + _counts(self.dropped)
        return line


def _counts(counter: Counter) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in counter.most_common())


# Literal escapes some corpora hold (SemEval 2013/2015: "it\u2019s", "\u002c", '\"').
_U_ESCAPE = re.compile(r"(?:\\u[0-9a-fA-F]{4})+")
_QUOTE_RUN = re.compile(r'(?:\\"|")(?:\\"|"){1,}|\\"')
_SPACES = re.compile(r"\s+")


def unescape_literals(text: str) -> str:
    """``\\u2019`` → ``’`` (surrogate pairs joined), runs of escaped quotes → ``"``, and HTML
    entities (``&amp;``) → characters: users send the real characters."""
    if "\\u" in text:
        text = _U_ESCAPE.sub(_decode_u_escapes, text)
    text = _QUOTE_RUN.sub('"', text)
    return html.unescape(text) if "&" in text else text


def _decode_u_escapes(match: re.Match) -> str:
    units = bytes.fromhex(match.group(0).replace("\\u", ""))
    return units.decode("utf-16-be", errors="replace")


def clean_text(text: str) -> str:
    """Control characters (which the service refuses) become spaces; ends are stripped."""
    return CONTROL_CHAR.sub(" ", text).strip()


def canonical_label(value: object) -> str:
    """A label as text, so that ``4``, ``"4"`` and ``"4.0"`` (a star column) are one label,
    and so are ``true``, ``True`` and ``TRUE``."""
    text = str(value).strip()
    if text.lower() in ("true", "false"):  # JSON's true, pandas' True, a CSV's TRUE
        return text.lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def to_examples(
    spec: SourceSpec, rows: Iterable[RawRow], report: SourceReport
) -> Iterator[Example]:
    """Clean each row and map its label; a row that cannot be used is counted, not raised."""
    # IMDB texts stay as its loader gives them: the default model's figures depend on them.
    clean = (lambda text: text if text.strip() else "") if spec.reader == "imdb" else clean_text
    for row in rows:
        report.read += 1
        text = clean(row.text)
        label = canonical_label(row.label)
        if not text:
            report.drop("empty text")
        elif label in spec.skip_labels:
            report.skipped[f"label {label}"] += 1
        elif label not in spec.label_map:
            report.drop(f"unknown label {label[:20]!r}" if label else "empty label")
        else:
            report.kept[row.split] += 1
            yield Example(
                text, spec.label_map[label], spec.name, row.group or _key(text), row.split
            )


def _key(text: str) -> str:
    """The group of a row without one: its text, so that duplicates share a split."""
    return "text:" + _SPACES.sub(" ", text.lower())


def require_file(path: Path, what: str) -> Path:
    if path.is_dir():
        raise SourceError(f"{what}: {path} is a folder; name the file in it")
    if not path.is_file():
        raise SourceError(f"{what}: {path} not found")
    return path


def file_codec(encoding: str) -> str:
    """UTF-8 read as utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not text."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def decode_line(raw: bytes, encoding: str, report: SourceReport) -> str | None:
    try:
        return raw.decode(file_codec(encoding))
    except UnicodeDecodeError:
        report.read += 1
        report.drop(f"not {encoding}")
        return None
