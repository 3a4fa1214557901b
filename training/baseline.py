"""The classical baseline: TF-IDF over word unigrams and bigrams + logistic regression.

Trained inside every job (``--no-baseline`` skips it) on exactly the LSTM's training rows,
labels and weights, with the shared tokenizer's normalisation and token rule, and scored on
the same test splits: it is what a careful engineer would try first, so the LSTM's figures
are reported beside it. Its regularisation strength is chosen on the validation rows.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sentiment_core.tokenizer import TOKEN_PATTERN, normalizer

C_GRID = (1.0, 4.0)  # inverse regularisation strengths tried; the lower validation loss wins
_TOKEN = re.compile(TOKEN_PATTERN)
_NORMALIZE = normalizer().normalize_str  # the model's own normalisation (lower case, ...)


@dataclass
class Baseline:
    vectorizer: object
    model: object
    n_labels: int
    c: float
    seconds: float

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """One column per model label (a label absent from training gets 0)."""
        found = self.model.predict_proba(self.vectorizer.transform(texts))
        out = np.zeros((len(texts), self.n_labels))
        out[:, self.model.classes_] = found
        return out

    def describe(self) -> dict:
        return {
            "model": "tf-idf (word 1-2 grams, sublinear tf, min_df 2) + logistic regression",
            "C": self.c,
            "features": len(self.vectorizer.vocabulary_),
            "fit_seconds": round(self.seconds, 1),
        }


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(_NORMALIZE(text))


def train_baseline(
    texts: Sequence[str],
    labels: np.ndarray,
    weights: np.ndarray | None,
    val_texts: Sequence[str],
    val_labels: np.ndarray,
    n_labels: int,
) -> Baseline:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    started = time.monotonic()
    vectorizer = TfidfVectorizer(
        tokenizer=_tokens, token_pattern=None, lowercase=False, ngram_range=(1, 2),
        min_df=2, sublinear_tf=True, dtype=np.float32,
    )  # fmt: skip
    x, x_val = vectorizer.fit_transform(texts), vectorizer.transform(val_texts)
    best = None
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=1000)
        model.fit(x, labels, sample_weight=weights)
        loss = log_loss(val_labels, model.predict_proba(x_val), labels=model.classes_)
        if best is None or loss < best[0]:
            best = (loss, c, model)
    _, c, model = best
    return Baseline(vectorizer, model, n_labels, c, time.monotonic() - started)
