"""Language-model data, in numpy: windows of token ids, the positions whose neighbours are
predicted, and the next-word (forward) and previous-word (backward) targets with their weights.

Output classes: the language model predicts the ``output_vocab`` most frequent words of the
vocabulary (token ids 2 .. output_vocab + 1, ids being assigned by frequency) as classes
1 .. output_vocab; every other word, and ``[UNK]``, is class 0, "other". A target weighs 0
where there is nothing to predict: the position is padding, or its neighbour is (past the
end of the text, before its start), or, with ``mask_other``, the neighbour is "other".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from sentiment_core.encoder import pad_batch
from sentiment_core.tokenizer import PAD_ID, UNK_ID
from training.data import length_bucketed_batches

OTHER = 0  # the class of rare words and of [UNK]


def output_classes(ids: np.ndarray, output_vocab: int) -> np.ndarray:
    """Each token id's class: id - 1 for the ``output_vocab`` most frequent words, else 0."""
    ids = np.asarray(ids)
    frequent = (ids > UNK_ID) & (ids < output_vocab + 2)
    return np.where(frequent, ids - 1, OTHER).astype(np.int32)


def cut_windows(sequences: Sequence[Sequence[int]], window: int) -> list[np.ndarray]:
    """Each text's ids cut into consecutive windows of at most ``window`` tokens; pieces of
    one token are left out (no neighbour to predict)."""
    out = []
    for seq in sequences:
        ids = np.asarray(seq, dtype=np.int32)
        for start in range(0, len(ids), window):
            piece = ids[start : start + window]
            if len(piece) >= 2:
                out.append(piece)
    return out


def sample_positions(shape: tuple[int, int], share: float, rng) -> np.ndarray:
    """(rows, P) positions per row, drawn without replacement; P = ceil(share × width).
    ``share`` >= 1: every position, in order."""
    rows, width = shape
    if share >= 1.0:
        return np.tile(np.arange(width, dtype=np.int32), (rows, 1))
    count = max(1, int(np.ceil(share * width)))
    return np.argsort(rng.random((rows, width)), axis=1)[:, :count].astype(np.int32)


def lm_targets(
    batch: np.ndarray, positions: np.ndarray, output_vocab: int, mask_other: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"next": (classes, weights), "previous": (classes, weights)} at ``positions`` of a
    post-padded ``batch``: the word after each position (forward direction) and the word
    before it (backward direction)."""
    rows = np.arange(batch.shape[0])[:, None]
    width = batch.shape[1]
    here = batch[rows, positions]
    after = np.where(
        positions + 1 < width, batch[rows, np.minimum(positions + 1, width - 1)], PAD_ID
    )
    before = np.where(positions >= 1, batch[rows, np.maximum(positions - 1, 0)], PAD_ID)
    out = {}
    for name, target in (("next", after), ("previous", before)):
        classes = output_classes(target, output_vocab)
        weight = (here != PAD_ID) & (target != PAD_ID)
        if mask_other:
            weight &= classes != OTHER
        out[name] = (classes, weight.astype(np.float32))
    return out


@dataclass(frozen=True)
class LMBatching:
    batch_size: int
    output_vocab: int
    target_share: float
    mask_other: bool
    directions: tuple[str, ...] = ("next", "previous")


def lm_batches(
    windows: list[np.ndarray], windows_per_epoch: int, batching: LMBatching, rng
) -> Iterator[tuple]:
    """One epoch: ``windows_per_epoch`` windows drawn at random, batched by length; each
    batch is (ids, positions), targets, weights (dicts keyed by direction). The weights are
    scaled to average 1 over the batch's targets, so that Keras' mean over all targets is
    the mean over the real ones."""
    chosen = rng.permutation(len(windows))[:windows_per_epoch]
    lengths = np.array([len(windows[i]) for i in chosen])
    for idx in length_bucketed_batches(lengths, batching.batch_size, rng):
        batch = pad_batch([windows[i] for i in chosen[idx]])
        positions = sample_positions(batch.shape, batching.target_share, rng)
        targets = lm_targets(batch, positions, batching.output_vocab, batching.mask_other)
        y, w = {}, {}
        for name in batching.directions:
            classes, weight = targets[name]
            y[name] = classes
            w[name] = weight * (weight.size / max(float(weight.sum()), 1.0))
        yield (batch, positions), y, w
