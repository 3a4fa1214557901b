"""Fakes for the batcher's scorer: flat functions (texts in, one score each) as
``run_groups`` (length groups in, rows out), and rows back to plain scores."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def as_run_groups(predict: Callable[[list], Sequence[float]]) -> Callable:
    """``predict`` called once per inference call with the call's texts, length-sorted."""

    def run_groups(groups: list[list]) -> list[list[list[float]]]:
        flat = [ids for group in groups for ids in group]
        scores = list(predict(flat))
        if len(scores) != len(flat):  # a fake that answers wrongly: rows that do not fit
            return [[[s] for s in scores]]
        rows, start = [], 0
        for group in groups:
            rows.append([[s] for s in scores[start : start + len(group)]])
            start += len(group)
        return rows

    return run_groups


def firsts(rows: list[list[float]]) -> list[float]:
    """Each row's first value: the score of a one-output (sigmoid) model."""
    return [row[0] for row in rows]
