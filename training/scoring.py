"""Figures per source and pooled, from output rows (onnxruntime's, or the baseline's)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sentiment_core.batching import spread_over_lengths
from training.evaluate import binary_extras, label_metrics
from training.export import decide
from training.fit import Rows


def probabilities(outputs: np.ndarray) -> np.ndarray:
    """One probability per label: a sigmoid column p becomes [1 - p, p]."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.shape[1] == 1:
        return np.concatenate([1.0 - outputs, outputs], axis=1)
    return outputs


def figures(rows: Rows, outputs: np.ndarray, labels: Sequence[str], idx=None) -> dict:
    """``label_metrics`` of ``rows`` (or the rows at ``idx``); binary models keep their
    ROC-AUC, F1 and tn/fp/fn/tp as well."""
    idx = np.arange(len(rows.y)) if idx is None else idx
    truth, out = rows.y[idx], outputs[idx]
    probs, predicted = probabilities(out), decide(out)
    result = label_metrics(truth, probs, predicted, labels)
    if out.shape[1] == 1:
        result.update(binary_extras(truth, probs, predicted))
    return result


def per_source(
    rows: Rows, outputs: np.ndarray, labels: Sequence[str], sources: Sequence[str]
) -> tuple[dict, dict]:
    """(pooled figures, {source: figures}); one source's pooled figures are its own."""
    by_source = {name: figures(rows, outputs, labels, rows.of_source(name)) for name in sources}
    pooled = by_source[sources[0]] if len(sources) == 1 else figures(rows, outputs, labels)
    return pooled, by_source


def parity_sample(splits: Sequence[Rows], sources: Sequence[str], n: int) -> list:
    """Up to ``n`` texts of every source, spread over its lengths: from its test rows when it
    has ``n`` of them (as for IMDB), else from all its rows."""
    picked = []
    for name in sources:
        pools = [[r.ids[i] for i in r.of_source(name)] for r in splits]
        test_pool = pools[-1]
        pool = test_pool if len(test_pool) >= n else [ids for p in pools for ids in p]
        picked += [pool[i] for i in spread_over_lengths([len(s) for s in pool], n)]
    return picked
