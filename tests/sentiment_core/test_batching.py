"""The length-sorted batching helper that training, bench and tests share."""

from __future__ import annotations

import numpy as np

from sentiment_core.batching import (
    length_sorted_batches,
    score_in_length_order,
    spread_over_lengths,
)


def test_batches_are_sorted_by_length_and_cover_every_index_once():
    lengths = [5, 1, 9, 3, 3, 7, 2]
    batches = length_sorted_batches(lengths, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in order] == sorted(lengths)


def test_rows_come_back_in_input_order():
    sequences = [[1] * n for n in (4, 1, 3, 2, 5)]
    seen = []

    def score(batch):
        seen.append([len(s) for s in batch])
        return np.array([[len(s), -len(s)] for s in batch])

    rows = score_in_length_order(score, sequences, batch_size=2)
    assert rows.tolist() == [[4, -4], [1, -1], [3, -3], [2, -2], [5, -5]]
    assert seen == [[1, 2], [3, 4], [5]]
    assert score_in_length_order(score, [], 2).shape == (0, 1)


def test_spread_over_lengths_runs_from_shortest_to_longest():
    lengths = list(range(100, 0, -1))
    picks = spread_over_lengths(lengths, 5)
    assert [lengths[i] for i in picks] == [1, 26, 51, 75, 100]  # evenly spaced ranks
    assert len(spread_over_lengths(lengths, 500)) == 100
