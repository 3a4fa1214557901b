"""WordLlama's token embeddings as word vectors (``--vectors wordllama-l2``, alone or after
GloVe: ``glove-6b-50d+wordllama-l2``).

The ``wordllama`` wheel (MIT) ships ``l2_supercat``: a (32000, 256) float16 table over
Llama 2's subword vocabulary, trained from the concatenated input embeddings of several
Llama 2 models for sentence similarity, with its tokenizer. A word's vector is the mean of
its subword tokens' rows, which is how WordLlama embeds any text, so every word of our
vocabulary gets one, rare and misspelt ones included (GloVe has no "overplotted"). The table
is Matryoshka-trained: its leading dimensions are the smaller models, so an embedding
narrower than 256 takes the leading dimensions. The vectors are rescaled to a mean norm of
``SCALE`` over the vocabulary: GloVe 6B 50d's own (4.5-4.6 on our vocabularies), the scale at
which the recipe's learning rate and adversarial ε were chosen.

Only the package's two data files are read (found with ``find_spec``, the package is not
imported: its ``__init__`` configures logging). Like GloVe, training only: the vectors end
up in the model's weights. The table was trained from Llama 2 70B's token embeddings (among
others), so models trained from it carry Meta's notice on (``vectors.NOTICES``; the model card
prints it; docs/training.md, "Ninth round").
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PACKAGE = "wordllama"
WEIGHTS = "weights/l2_supercat_256.safetensors"
TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"
SCALE = 4.5


@dataclass
class SubwordVectors:
    """Word vectors composed from subword embeddings: every word has one."""

    name: str
    table: np.ndarray  # (subwords, dim) float32
    tokenizer: object  # tokenizers.Tokenizer

    @property
    def dim(self) -> int:
        return self.table.shape[1]

    def of_words(self, words: list[str], width: int) -> np.ndarray:
        """(len(words), width): the mean of each word's subword rows, leading ``width`` dims,
        rescaled to a mean norm of ``SCALE``; a word with no subword gets zeros."""
        out = np.zeros((len(words), self.dim), np.float32)
        for i, encoding in enumerate(self.tokenizer.encode_batch(words, add_special_tokens=False)):
            ids = [t for t in encoding.ids if t < len(self.table)]
            if ids:
                out[i] = self.table[ids].mean(axis=0)
        out = out[:, :width]
        norms = np.linalg.norm(out, axis=1)
        mean_norm = norms[norms > 0].mean() if (norms > 0).any() else 1.0
        return out * (SCALE / mean_norm)


def load_wordllama(name: str) -> SubwordVectors:
    from training.vectors import VectorsError

    def missing(package: str | None) -> VectorsError:
        return VectorsError(
            f"--vectors {name} needs the vectors extra (missing: {package}); "
            "pip install -e '.[train,vectors]'"
        )

    try:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise missing(exc.name) from None
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise missing(PACKAGE)
    root = Path(spec.submodule_search_locations[0])
    tensors = load_file(str(root / WEIGHTS))
    if len(tensors) != 1:
        raise VectorsError(f"{name}: expected one table in {WEIGHTS}, found {sorted(tensors)}")
    (table,) = tensors.values()
    tokenizer = Tokenizer.from_file(str(root / TOKENIZER))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    if table.ndim != 2 or tokenizer.get_vocab_size() > len(table):
        raise VectorsError(f"{name}: a {table.shape} table for a tokenizer of "
                           f"{tokenizer.get_vocab_size()} subwords")  # fmt: skip
    return SubwordVectors(name, table.astype(np.float32), tokenizer)
