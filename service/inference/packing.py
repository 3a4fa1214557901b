"""Length groups: a batch cut into length-sorted groups, each one padded onnxruntime input.

Padding is not free for an LSTM: onnxruntime runs every row to the longest row's length.
Groups are formed greedily over the sorted lengths: a group closes when adding the next
text would waste more than ``max_waste`` of its cells (or ``slack`` cells, whichever is
larger: tiny texts are cheap to pad), or exceed ``max_rows`` rows or ``max_cells`` padded
cells. The cell cap bounds the memory of one run; the row cap is where this LSTM runs
fastest per text (docs/performance.md, "Packing").

A batch's groups are then shared among the inference threads (``balanced_shares``), so
even a lone batch keeps every thread busy.
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
    """Indices of ``lengths`` cut into length groups, shortest first."""
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


def balanced_shares(
    groups: list[list[int]], lengths: Sequence[int], threads: int
) -> list[list[list[int]]]:
    """The groups dealt to at most ``threads`` shares of about equal padded cells."""
    if threads <= 1 or len(groups) <= 1:
        return [groups]
    shares: list[list[list[int]]] = [[] for _ in range(min(threads, len(groups)))]
    cells = [0] * len(shares)
    for group in sorted(groups, key=lambda g: -max(lengths[i] for i in g) * len(g)):
        k = cells.index(min(cells))
        shares[k].append(group)
        cells[k] += max(lengths[i] for i in group) * len(group)
    return shares
