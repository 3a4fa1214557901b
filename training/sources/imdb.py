"""IMDB through training/data.py's loader: its movie ids group the validation split."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from training.data import Review, default_data_path, load_imdb
from training.sources.base import RawRow, SourceReport, SourceSpec

LABELS = {0: "negative", 1: "positive"}


@lru_cache(maxsize=1)  # train and test come from one read of the archive
def _load(path: Path) -> dict[str, list[Review]]:
    return load_imdb(path)


def imdb_path(spec: SourceSpec, data: str) -> Path:
    """The source's ``path``, else ``--data``, else $SENTIMENT_DATA or the shared copy."""
    if spec.path:
        return spec.path.resolve()
    return Path(data).resolve() if data else default_data_path()


def read_imdb(spec: SourceSpec, report: SourceReport, data: str = "") -> Iterator[RawRow]:
    """The archive's train split as training rows; its test split as test rows."""
    reviews = _load(imdb_path(spec, data))
    splits = ("train", "test") if spec.imdb_test else ("train",)
    for split in splits:
        for review in reviews[split]:
            yield RawRow(review.text, LABELS[review.label], movie_group(review), split)


def movie_group(review: Review) -> str:
    """The movie; a review whose URL line is missing is a group of its own."""
    return review.movie_id or f"review-{review.review_id}-{review.label}"
