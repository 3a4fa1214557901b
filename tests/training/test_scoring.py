"""Which texts the parity check reads: every source, spread over its lengths."""

from __future__ import annotations

import numpy as np

from training.fit import Rows
from training.scoring import parity_sample
from training.sources.base import Example


def rows_of(source_lengths: dict[str, list[int]]) -> Rows:
    examples, ids = [], []
    for source, lengths in source_lengths.items():
        for n in lengths:
            examples.append(Example(f"{source} {n}", "positive", source, "", "train"))
            ids.append([n] * n)  # the ids say their own length
    return Rows(examples, ids, np.zeros(len(ids), dtype=np.int64))


def test_every_source_is_sampled_from_its_test_rows_when_it_has_enough():
    train = rows_of({"big": [1] * 50, "small": list(range(1, 11))})
    test = rows_of({"big": list(range(1, 41)), "small": [99, 98]})
    picked = parity_sample([train, test], ["big", "small"], 8)
    big, small = picked[:8], picked[8:]
    # from its 40 test rows (its training rows are all 1 long), short to long
    assert len(big) == 8 and max(map(len, big)) >= 35 and min(map(len, big)) <= 5
    # "small" has 2 test rows < 8: it is drawn from all of its rows, still 8 of them
    assert len(small) == 8 and any(len(s) < 11 for s in small)
