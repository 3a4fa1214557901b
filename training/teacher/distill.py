"""The teacher: a frozen sentence encoder with a linear layer, whose probabilities become
training targets (distillation), for its sources' training rows and for spans of them.

1. the teacher sources' training rows are embedded (all-mpnet-base-v2; vectors cached)
2. logistic regression on those vectors, its C chosen by cross-fitted NLL on the same rows
   (no validation row is read); each row's own probabilities come from the fold that did
   not see it
3. random contiguous spans of those rows (phrases, which SST labels in its parse trees and
   the shared data lacks) are embedded and labelled by the regression fit on all the rows
4. targets: a teacher row's is alpha·its label + (1 - alpha)·the teacher's; a span's is the
   teacher's alone; every other row keeps its label

Validation and test rows are never embedded, and no span equals one of their texts.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.sources import Corpus, Example
from training.sources.splits import normalized
from training.teacher.spec import SPANS_SOURCE, TeacherSpec
from training.teacher.weights import MODEL, WEIGHTS_SHA256, TeacherError, model_folder

ENCODER_VERSION = "mpnet-tf-1 max_tokens=384"  # in the vectors' cache key: a change re-embeds


@dataclass
class Distillation:
    """Spans to append to the training rows, and soft targets by training-row index."""

    spans: list[Example]
    targets: dict[int, np.ndarray] = field(default_factory=dict)  # probabilities over labels
    report: dict = field(default_factory=dict)

    def soft_targets(self, y: np.ndarray, k: int) -> np.ndarray:
        """(n, k) for the training rows (the spans appended last): the teacher's mix where
        it gave one, else one-hot."""
        if self.spans and max(self.targets) != len(y) - 1:
            raise ValueError(
                f"{len(y)} training rows, but the spans end at row {max(self.targets)}"
            )
        targets = np.eye(k)[y]
        for i, target in self.targets.items():
            targets[i] = target
        return targets.astype(np.float32)


def distill(
    spec: TeacherSpec, corpus: Corpus, labels: Sequence[str], log: Callable[[str], None]
) -> Distillation:
    started = time.monotonic()
    rows = [i for i, e in enumerate(corpus.train) if e.source in spec.sources]
    texts = [corpus.train[i].text for i in rows]
    y = np.array([labels.index(corpus.train[i].label) for i in rows], dtype=int)
    groups = [corpus.train[i].group or corpus.train[i].text for i in rows]
    _require_teachable(y, groups, spec)  # before the encoder loads
    spans = make_spans(texts, spec, held_out=[*corpus.validation, *corpus.test], train=corpus.train)
    log(f"teacher: {MODEL} on {len(rows):,} training rows of {', '.join(spec.sources)}; "
        f"{len(spans):,} spans of them")  # fmt: skip
    vectors = embed_cached(spec.cache, [*texts, *spans], log)
    row_vectors, span_vectors = vectors[: len(texts)], vectors[len(texts) :]
    best, crossed, by_c = choose_c(row_vectors, y, groups, spec, len(labels))
    log(f"teacher: cross-fitted NLL by C {by_c} (C = {best:g} kept)")
    full = _logistic(best).fit(row_vectors, y)
    span_probs = _probabilities(full, span_vectors, len(labels))
    alpha, onehot = spec.alpha, np.eye(len(labels))[y]
    result = Distillation(
        spans=[
            Example(t, labels[int(p.argmax())], SPANS_SOURCE, t, "train")
            for t, p in zip(spans, span_probs, strict=True)
        ],
        targets={i: alpha * onehot[k] + (1 - alpha) * crossed[k] for k, i in enumerate(rows)},
    )
    first_span = len(corpus.train)
    result.targets |= {first_span + k: p for k, p in enumerate(span_probs)}
    result.report = {
        "model": MODEL,
        "sources": list(spec.sources),
        "rows": len(rows),
        "spans": len(spans),
        "alpha": alpha,
        "C": best,
        "cross_fitted_nll": by_c,
        "cross_fitted_accuracy": round(float((crossed.argmax(1) == y).mean()), 4),
        "span_label_mix": {
            label: round(float((span_probs.argmax(1) == k).mean()), 4) if len(spans) else 0.0
            for k, label in enumerate(labels)
        },
        "seconds": round(time.monotonic() - started, 1),
    }
    log(f"teacher: cross-fitted accuracy {result.report['cross_fitted_accuracy']:.4f}; span "
        f"labels {result.report['span_label_mix']}; {result.report['seconds']:.0f} s")  # fmt: skip
    return result


def _require_teachable(y: np.ndarray, groups: list[str], spec: TeacherSpec) -> None:
    where = f"[teacher] sources {', '.join(spec.sources)}"
    if len(set(y.tolist())) < 2:
        raise TeacherError(f"{where}: {len(y)} training rows of {len(set(y.tolist()))} label(s); "
                           "the teacher needs training rows of two labels or more")  # fmt: skip
    if (n := len(set(groups))) < spec.folds:
        raise TeacherError(f"{where}: {n} groups of training rows, fewer than folds = "
                           f"{spec.folds} (cross-fitting holds out whole groups)")  # fmt: skip


def make_spans(
    texts: Sequence[str], spec: TeacherSpec, held_out: Sequence[Example], train: Sequence[Example]
) -> list[str]:
    """``spans_per_text`` random spans of 2 to n-2 words of each text of ``min_words`` or
    more; distinct, sorted, and none equal to any training, validation or test text."""
    rng = np.random.default_rng(spec.seed)
    found: set[str] = set()
    for text in texts:
        words = text.split()
        if len(words) < spec.min_words:
            continue
        for _ in range(spec.spans_per_text):
            n = int(rng.integers(2, len(words) - 1))
            start = int(rng.integers(0, len(words) - n + 1))
            found.add(" ".join(words[start : start + n]))
    taken = {normalized(e.text) for e in [*held_out, *train]}
    return sorted(s for s in found if normalized(s) not in taken)


def choose_c(
    vectors: np.ndarray, y: np.ndarray, groups: list[str], spec: TeacherSpec, k: int
) -> tuple[float, np.ndarray, dict[str, float]]:
    """(C with the lowest cross-fitted NLL, that C's out-of-fold probabilities, NLL by C)."""
    from sklearn.model_selection import StratifiedGroupKFold

    folds = list(
        StratifiedGroupKFold(spec.folds, shuffle=True, random_state=spec.seed).split(
            vectors, y, groups
        )
    )
    crossed, nll = {}, {}
    for c in spec.c_grid:
        probs = np.zeros((len(y), k))
        for fit_rows, held in folds:
            model = _logistic(c).fit(vectors[fit_rows], y[fit_rows])
            probs[held] = _probabilities(model, vectors[held], k)
        crossed[c] = probs
        nll[c] = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1)).mean())
    best = min(spec.c_grid, key=lambda c: (nll[c], c))
    return best, crossed[best], {f"{c:g}": round(v, 4) for c, v in nll.items()}


def embed_cached(cache: Path, texts: list[str], log: Callable[[str], None]) -> np.ndarray:
    """The texts' vectors: ``<cache>/vectors/<hash of the weights and texts>.npy`` if there,
    else computed (about 20 sentences a second on 2 cores) and saved."""
    digest = hashlib.sha256(f"{WEIGHTS_SHA256} {ENCODER_VERSION}".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\0")
    path = cache / "vectors" / f"{digest.hexdigest()[:32]}.npy"
    try:
        vectors = np.load(path)
        if vectors.shape == (len(texts), 768):
            log(f"teacher: {len(texts):,} vectors from {path}")
            return vectors
    except (OSError, ValueError):
        pass  # none, or unreadable: computed again
    from training.teacher.mpnet import MpnetEncoder

    encoder = MpnetEncoder(model_folder(cache))
    reported = [0.0]  # a line a minute at most

    def progress(done: int, seconds: float) -> None:
        if seconds - reported[0] >= 60 or done == len(texts):
            reported[0] = seconds
            log(f"teacher: embedded {done:,} of {len(texts):,} texts in {seconds:.0f} s")

    vectors = encoder.embed(texts, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A file of its own, then renamed: two jobs with the same texts never mix their writes.
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
        np.save(handle, vectors)
    os.replace(handle.name, path)
    return vectors


def _logistic(c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000)


def _probabilities(model, vectors: np.ndarray, k: int) -> np.ndarray:
    """(n, k): a label the teacher never saw in its rows gets probability 0."""
    out = np.zeros((len(vectors), k))
    if len(vectors):
        out[:, model.classes_] = model.predict_proba(vectors)
    return out
