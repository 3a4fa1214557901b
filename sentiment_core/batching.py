"""Length-sorted batches: texts of similar length together, so padding stays small."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices into ``lengths``, shortest first, cut into batches of ``batch_size``."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def score_in_length_order(
    score: Callable[[list[Sequence[int]]], np.ndarray],
    sequences: Sequence[Sequence[int]],
    batch_size: int = 256,
) -> np.ndarray:
    """``score`` on length-sorted batches of ``sequences``; rows back in input order.

    ``score`` takes a list of sequences and returns one output row (or value) per sequence.
    """
    out: np.ndarray | None = None
    for idx in length_sorted_batches([len(s) for s in sequences], batch_size):
        rows = np.asarray(score([sequences[i] for i in idx]), dtype=np.float32)
        rows = rows.reshape(len(idx), -1)
        if out is None:
            out = np.empty((len(sequences), rows.shape[1]), dtype=np.float32)
        out[idx] = rows
    return out if out is not None else np.empty((0, 1), dtype=np.float32)


def spread_over_lengths(lengths: Sequence[int], n: int) -> list[int]:
    """``n`` indices spread evenly over the length distribution, shortest to longest."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    n = min(n, len(order))
    return [int(order[i]) for i in np.linspace(0, len(order) - 1, n).round().astype(int)]
