"""Split a batch into length-sorted sub-batches so that padding stays small.

Padding is not free for an LSTM: onnxruntime runs every row to the longest row's length.
On 64 random IMDB reviews, one padded batch is about half padding and three times slower
than the same texts sorted and cut into groups of similar length; short sentences gain as
much (bench/, docs/performance.md). The groups are formed greedily over the sorted lengths:
a group closes when adding the next text would waste more than ``max_waste`` of its cells
(or ``slack`` cells, whichever is larger: tiny texts are cheap to pad), or when it
would exceed ``max_rows`` rows or ``max_cells`` padded cells. The cell cap bounds the
memory of one onnxruntime run (its arena keeps the peak). The row cap is 4 because this
LSTM runs fastest per text on sorted batches of about 4 rows (the in-process ceiling's
sweep; in process, one thread, 64-review batches: 2,329 texts/s at 4 rows, 2,215 at 64);
in the service the two measure the same throughput within noise, with 4 rows using about
6% less CPU (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_WASTE = 0.10
SLACK_CELLS = 64
MAX_ROWS = 4
MAX_CELLS = 4096


def pack_by_length(
    lengths: Sequence[int],
    max_waste: float = MAX_WASTE,
    slack: int = SLACK_CELLS,
    max_rows: int = MAX_ROWS,
    max_cells: int = MAX_CELLS,
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into sub-batches, shortest first."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    group: list[int] = []
    tokens = 0
    for i in order:
        n = lengths[i]
        # Sorted ascending, so ``n`` is the group's new width if the text joins it.
        wasted = n * (len(group) + 1) - (tokens + n)
        full = len(group) >= max_rows or n * (len(group) + 1) > max_cells
        if group and (full or wasted > max(max_waste * (tokens + n), slack)):
            groups.append(group)
            group, tokens = [], 0
        group.append(i)
        tokens += n
    if group:
        groups.append(group)
    return groups


def padding_share(lengths: Sequence[int], groups: list[list[int]]) -> float:
    """Share of the cells onnxruntime computes that are padding (0 = none)."""
    cells = sum(max(lengths[i] for i in g) * len(g) for g in groups)
    return 1.0 - sum(lengths) / cells if cells else 0.0
