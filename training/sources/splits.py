"""Validation splits, smoke-run subsets, sampling rates, and the test-overlap guard."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from training.data import split_by_group
from training.sources.base import Example, SourceReport

_SPACES = re.compile(r"\s+")


def stratified_subset(
    examples: list[Example], n: int, labels: Sequence[str], rng: np.random.Generator
) -> list[Example]:
    """About ``n`` examples, an equal share per label where the source has enough.

    Labels are taken last to first and the last one gets the remainder: for
    (negative, positive) that is exactly the subset earlier versions drew, so smoke runs
    of the default IMDB model draw the same reviews.
    """
    present = [label for label in reversed(labels) if any(e.label == label for e in examples)]
    picked: list[Example] = []
    for i, label in enumerate(present):
        of_label = [e for e in examples if e.label == label]
        share = n // len(present) if i < len(present) - 1 else n - len(picked)
        picked += [of_label[j] for j in rng.permutation(len(of_label))[:share]]
    return picked


def hold_out_validation(
    train: list[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Whole groups (a movie, a tweet id, a product, a text) go to validation."""
    kept, held = split_by_group(train, lambda e: e.group, fraction, seed)
    return kept, [_in_split(e, "validation") for e in held]


def apply_sample_rate(
    examples: list[Example], rate: float, rng: np.random.Generator
) -> list[Example]:
    """Keep a share ``rate`` of the rows (seeded); above 1 every row repeats, plus a share."""
    if rate == 1.0:
        return examples
    whole, part = divmod(rate, 1.0)
    extra = rng.permutation(len(examples))[: round(part * len(examples))]
    return examples * int(whole) + [examples[i] for i in sorted(extra)]


def drop_test_overlap(
    examples: list[Example], test: list[Example], reports: dict[str, SourceReport]
) -> list[Example]:
    """Training and validation rows whose text is also a test row's (any source) go."""
    seen = {normalized(e.text) for e in test}
    kept = []
    for e in examples:
        if normalized(e.text) in seen:
            reports[e.source].drop(f"text also in a test split ({e.split})")
            reports[e.source].kept[e.split] -= 1
        else:
            kept.append(e)
    return kept


def normalized(text: str) -> str:
    return _SPACES.sub(" ", text.lower()).strip()


def class_weights(
    examples: list[Example],
    labels: Sequence[str],
    source_weights: dict,
    mode: str,
    overrides: dict[str, str] | None = None,
) -> dict[str, dict[str, float]]:
    """Each source's weight per label: ``none`` 1; ``balanced`` every label's total weight
    equal over all sources (w_c = total / (K · weight of c)); ``balanced-per-source`` the
    same within each source, over the labels it has (SemEval's few negatives weigh more,
    without a polar corpus's rows leaning towards a neutral class it lacks).

    ``overrides`` ({source: "none" | "balanced"}) sets a source's own rule: ``balanced``
    within that source, whatever ``mode``; e.g. a source scored by accuracy keeps its
    natural label mix while one scored by average recall is balanced. Pooled balancing
    covers only the sources that follow ``mode``."""
    overrides = overrides or {}
    job_rule = {"none": "none", "balanced": "pooled", "balanced-per-source": "own"}[mode]
    rule = {e.source: job_rule for e in examples}
    rule |= {source: "own" if how == "balanced" else "none" for source, how in overrides.items()}
    following = [e for e in examples if rule[e.source] == "pooled"]
    pooled = _balanced(following, labels, source_weights) if following else {}
    out = {}
    for source in dict.fromkeys(e.source for e in examples):
        if rule[source] == "none":
            out[source] = dict.fromkeys(labels, 1.0)
        elif rule[source] == "pooled":
            out[source] = pooled
        else:
            own = [e for e in examples if e.source == source]
            out[source] = _balanced(own, labels, source_weights)
    return out


def _balanced(examples: list[Example], labels: Sequence[str], source_weights: dict) -> dict:
    per_label: Counter = Counter()
    for e in examples:
        per_label[e.label] += source_weights[e.source]
    total = sum(per_label.values())
    present = [label for label in labels if per_label[label] > 0]
    return {label: total / (len(present) * per_label[label]) for label in present}


def _in_split(example: Example, split: str) -> Example:
    return Example(example.text, example.label, example.source, example.group, split)
