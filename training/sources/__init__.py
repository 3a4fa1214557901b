"""Training data from any number of sources: readers, label maps, splits.

``load_corpus`` reads every source of a config, maps its labels to the model's, counts
the rows it could not use (per reason), and returns the train / validation / test rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from training.sources.base import (
    Example,
    RawRow,
    SourceError,
    SourceReport,
    SourceSpec,
    to_examples,
)
from training.sources.corpora import read_blitzer, read_label_text, read_semeval
from training.sources.imdb import read_imdb
from training.sources.splits import (
    apply_sample_rate,
    drop_test_overlap,
    hold_out_validation,
    stratified_subset,
)
from training.sources.tabular import read_delimited, read_jsonl

__all__ = [
    "READERS", "Corpus", "Example", "SourceError", "SourceSpec", "load_corpus", "require_rows",
]  # fmt: skip

Reader = Callable[[SourceSpec, SourceReport], Iterator[RawRow]]
READERS: dict[str, Reader] = {
    "imdb": read_imdb,
    "csv": functools.partial(read_delimited, delimiter=","),
    "tsv": functools.partial(read_delimited, delimiter="\t"),
    "jsonl": read_jsonl,
    "sst2": read_label_text,
    "sst5": read_label_text,
    "cr": read_label_text,
    "mpqa": read_label_text,
    "blitzer": read_blitzer,
    "semeval": read_semeval,
}
POLAR = {"0": "negative", "1": "positive"}
# Each named corpus's labels in the model's terms; csv/tsv/jsonl default to the model's own.
DEFAULT_LABEL_MAPS = {
    "imdb": {"negative": "negative", "positive": "positive"},
    "sst2": POLAR,
    "cr": POLAR,
    "mpqa": POLAR,
    "sst5": {"0": "negative", "1": "negative", "2": "neutral", "3": "positive", "4": "positive"},
    "blitzer": {"negative": "negative", "positive": "positive"},
    "semeval": {"negative": "negative", "neutral": "neutral", "positive": "positive"},
}


def default_label_map(reader: str, labels: Sequence[str]) -> tuple[dict[str, str], tuple]:
    """A reader's label map for a model with ``labels``; source labels the model lacks
    (a neutral class for a binary model) are left out on purpose, not counted as bad."""
    mapping = DEFAULT_LABEL_MAPS.get(reader, {label: label for label in labels})
    kept = {raw: label for raw, label in mapping.items() if label in labels}
    return kept, tuple(sorted(set(mapping) - set(kept)))


@dataclass
class Corpus:
    train: list[Example] = field(default_factory=list)
    validation: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)
    reports: dict[str, SourceReport] = field(default_factory=dict)

    def sources(self, split: str) -> list[str]:
        """Source names with rows in ``split``, in config order."""
        present = {e.source for e in getattr(self, split)}
        return [name for name in self.reports if name in present]


@dataclass(frozen=True)
class LoadOptions:
    labels: tuple[str, ...]
    val_fraction: float
    seed: int
    limit: int = 0  # >0: at most this many train (and test) rows per source
    imdb_data: str = ""  # --data: the IMDB archive for imdb sources without a path
    drop_test_overlap: bool = False


def load_corpus(
    specs: Sequence[SourceSpec], options: LoadOptions, rng: np.random.Generator
) -> Corpus:
    """Every source's rows, split; ``SourceError`` for a missing file or column.

    ``rng`` draws smoke-run subsets and sampling rates, source by source, in config order.
    """
    corpus = Corpus()
    for spec in specs:
        report = corpus.reports[spec.name] = SourceReport(spec.name)
        train, validation, test = _split_source(spec, report, options, rng)
        corpus.train += train
        corpus.validation += validation
        corpus.test += test
    if options.drop_test_overlap and corpus.test:
        corpus.train = drop_test_overlap(corpus.train, corpus.test, corpus.reports)
        corpus.validation = drop_test_overlap(corpus.validation, corpus.test, corpus.reports)
    return corpus


def require_rows(corpus: Corpus, labels: Sequence[str]) -> None:
    """Training needs rows to learn from and rows to stop on; say what each source gave."""
    for split in ("train", "validation"):
        if not getattr(corpus, split):
            raise SourceError(f"no {split} rows: " + "; ".join(_summaries(corpus)))
    trained = {e.label for e in corpus.train}
    if untrained := [label for label in labels if label not in trained]:
        raise SourceError(
            f"no training rows for label(s) {', '.join(map(repr, untrained))}: check the label "
            "maps; " + "; ".join(_summaries(corpus))
        )


def _split_source(spec: SourceSpec, report: SourceReport, options: LoadOptions, rng):
    reader = READERS[spec.reader]
    if spec.reader == "imdb":
        reader = functools.partial(read_imdb, data=options.imdb_data)
    rows = list(to_examples(spec, reader(spec, report), report))
    train = [e for e in rows if e.split == "train"]
    validation = [e for e in rows if e.split == "validation"]
    test = [e for e in rows if e.split == "test"]
    if options.limit:  # smoke runs: a label-balanced, seeded subset
        train = stratified_subset(train, options.limit, options.labels, rng)
        test = stratified_subset(test, options.limit, options.labels, rng)
        validation = stratified_subset(validation, options.limit, options.labels, rng)
    if not validation and train:
        fraction = options.val_fraction if spec.val_fraction is None else spec.val_fraction
        train, validation = hold_out_validation(train, fraction, options.seed)
    train = apply_sample_rate(train, spec.sample, rng)
    report.kept.clear()
    report.kept.update({"train": len(train), "validation": len(validation), "test": len(test)})
    return train, validation, test


def _summaries(corpus: Corpus) -> list[str]:
    return [report.summary() for report in corpus.reports.values()]
