"""The texts and request bodies every system is measured with (IMDB test reviews).

All systems get byte-identical bodies, written once per session as JSON lines: the load
generator cycles through them, so every request carries a real review, not a repeat.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_TAG = re.compile(r"<[^>]+>")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Workload:
    """One request shape at one concurrency, as the issue lists them."""

    name: str
    kind: str  # which payload file: "review", "sentence" or "batch64"
    texts_per_request: int
    concurrency: int
    label: str


WORKLOADS: tuple[Workload, ...] = (
    Workload("review-c1", "review", 1, 1, "1 review/request, concurrency 1"),
    Workload("review-c64", "review", 1, 64, "1 review/request, concurrency 64"),
    Workload("sentence-c64", "sentence", 1, 64, "1 short sentence/request, concurrency 64"),
    Workload("batch64-c4", "batch64", 64, 4, "64 reviews/request, concurrency 4"),
)


def by_name(names: list[str]) -> list[Workload]:
    known = {w.name: w for w in WORKLOADS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown workloads {unknown}; choose from {sorted(known)}")
    return [known[n] for n in names]


def sample_reviews(n: int, seed: int = 0) -> list[str]:
    """``n`` IMDB test reviews in a fixed random order (the same ones every run)."""
    from training.data import load_imdb

    reviews = load_imdb(splits=("test",))["test"]
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(reviews), size=min(n, len(reviews)), replace=False)
    return [reviews[i].text for i in picks]


def first_sentence(review: str, max_chars: int = 200) -> str:
    """The review's first sentence of at least three words (what a chat-style client sends)."""
    text = _TAG.sub(" ", review)
    for sentence in _SENTENCE_END.split(text.strip()):
        if len(sentence.split()) >= 3:
            return sentence.strip()[:max_chars]
    return text.strip()[:max_chars]


def write_payloads(reviews: list[str], folder: Path, batch: int = 64) -> dict[str, Path]:
    """One JSON body per line (ASCII, so no byte ends a line early) for each payload kind."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(reviews)
    # Windows over the shuffled sample; a stride that is not a multiple of n makes more
    # distinct bodies than n // batch when the sample is small.
    windows = max(1, min(64, n))
    stride = max(1, n // windows) if n >= batch else 1
    bodies = {
        "review": [{"text": t} for t in reviews],
        "sentence": [{"text": first_sentence(t)} for t in reviews],
        "batch64": [
            {"texts": [reviews[(k * stride + j) % n] for j in range(batch)]} for k in range(windows)
        ],
    }
    files = {}
    for kind, items in bodies.items():
        path = folder / f"{kind}.jsonl"
        path.write_text("".join(json.dumps(b) + "\n" for b in items))
        files[kind] = path
    return files


def texts_of(path: Path) -> list[str]:
    """Every text in a payload file, in order (for the in-process ceiling)."""
    texts: list[str] = []
    for line in path.read_text().split("\n"):
        if not line:
            continue
        body = json.loads(line)
        texts.extend([body["text"]] if "text" in body else body["texts"])
    return texts
