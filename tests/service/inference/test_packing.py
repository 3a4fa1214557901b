"""Length packing: every text once, bounded padding, bounded rows."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from service.inference.packing import pack_by_length, padding_share


@given(st.lists(st.integers(1, 800), max_size=300))
def test_every_text_once_and_padding_bounded(lengths):
    groups = pack_by_length(lengths, max_waste=0.1, slack=64, max_rows=16, max_cells=2000)
    flat = [i for g in groups for i in g]
    assert sorted(flat) == list(range(len(lengths)))
    for g in groups:
        assert 1 <= len(g) <= 16
        assert len(g) == 1 or max(lengths[i] for i in g) * len(g) <= 2000
        widths = [lengths[i] for i in g]
        wasted = max(widths) * len(g) - sum(widths)
        assert wasted <= max(0.1 * sum(widths), 64)


def test_random_reviews_pack_with_little_padding():
    rng = np.random.default_rng(0)
    lengths = rng.lognormal(5.3, 0.7, 64).astype(int).clip(1, 800).tolist()
    naive = padding_share(lengths, [list(range(64))])
    packed = padding_share(lengths, pack_by_length(lengths))
    assert naive > 0.4 and packed < 0.1


def test_empty_batch():
    assert pack_by_length([]) == [] and padding_share([], []) == 0.0
