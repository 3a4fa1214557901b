"""An n-gram branch beside the RNN: Naive-Bayes-weighted logistic regression over the
token ids' unigrams and hashed bigrams (NBSVM, Wang & Manning 2012), stacked with the
RNN's logit on the validation rows (as Mesnil et al. 2014 combine NBSVM with an RNN).

The two models err on different reviews: the RNN reads word order and negation, the
n-gram model weighs every phrase of a long review at once. The branch is part of the
Keras model and of the ONNX graph (``NgramLogit``: a Gather over a (buckets, 1) table),
so the service, the parity check and every bench see one model. It costs a table lookup
per token, nothing beside the LSTM (docs/training.md, "Fourth round").

During the RNN's training the table is zero and frozen, so the branch adds 0 and the RNN
trains exactly as without it. After training, ``fit_ngram_branch`` fits the n-gram model
on the training rows, picks its regularisation by validation accuracy, fits the two
stacking weights and the bias on the validation rows, and folds all of it into the table
and the output layer.

Features, identical in numpy (here) and in the graph (``NgramLogit``): for a text of L
real tokens, each unigram id and each hashed bigram index counts 1/sqrt(L) (between the
l1 and the l2 normalisation of the counts; the graph cannot count distinct n-grams).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import scipy.sparse as sp
from keras import ops

C_GRID = (10.0, 100.0, 1000.0)  # the n-gram model's inverse L2 strength, chosen on validation
NB_ALPHA = 1.0  # Laplace smoothing of the Naive Bayes count ratios


def bigram_index(first, second, vocab_size: int, buckets: int):
    """A bigram's bucket: after the unigram ids, the pair's exact code modulo the rest.

    Works on numpy arrays and Keras tensors alike (int64: the code reaches vocab_size²).
    """
    return (first * vocab_size + second) % (buckets - vocab_size) + vocab_size


def ngram_features(ids: Sequence[Sequence[int]], vocab_size: int, buckets: int) -> sp.csr_matrix:
    """One row per text: 1/sqrt(L) per unigram id and per hashed bigram, summed."""
    rows, cols, vals = [], [], []
    for r, seq in enumerate(ids):
        a = np.asarray(seq, dtype=np.int64)
        a = a[a > 0]
        if not len(a):
            continue
        index = np.concatenate([a, bigram_index(a[:-1], a[1:], vocab_size, buckets)])
        rows.append(np.full(len(index), r))
        cols.append(index)
        vals.append(np.full(len(index), 1.0 / np.sqrt(len(a))))
    if not rows:
        return sp.csr_matrix((len(ids), buckets))
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(ids), buckets),
    )
    matrix.sum_duplicates()
    return matrix


def nb_ratios(features: sp.csr_matrix, y: np.ndarray) -> np.ndarray:
    """Each feature's log-count ratio log(P(f|positive) / P(f|negative)), on presence."""
    present = (features > 0).astype(np.float64)
    positive = np.asarray(present[y == 1].sum(axis=0)).ravel() + NB_ALPHA
    negative = np.asarray(present[y == 0].sum(axis=0)).ravel() + NB_ALPHA
    return np.log(positive / positive.sum()) - np.log(negative / negative.sum())


@keras.saving.register_keras_serializable("sentiment")
class NgramLogit(keras.layers.Layer):
    """The n-gram model's logit for each text: its features (see the module) times a
    (buckets, 1) table, plus nothing: the intercept lives in the output layer's bias.

    The table is not trainable: zero while the RNN trains, then set by ``fit_ngram_branch``.
    """

    def __init__(self, vocab_size: int, buckets: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.buckets = vocab_size, buckets

    def build(self, input_shape):
        self.table = self.add_weight(
            shape=(self.buckets, 1), initializer="zeros", trainable=False, name="table"
        )

    def call(self, input_ids):
        ids = ops.cast(input_ids, "int64")
        real = ops.cast(ops.greater(ids, 0), self.compute_dtype)
        pairs = bigram_index(ids[:, :-1], ids[:, 1:], self.vocab_size, self.buckets)
        unigrams = ops.sum(ops.take(self.table, ids, axis=0)[..., 0] * real, axis=1)
        bigrams = ops.sum(
            ops.take(self.table, pairs, axis=0)[..., 0] * real[:, :-1] * real[:, 1:], axis=1
        )
        length = ops.maximum(ops.sum(real, axis=1), 1.0)
        return ops.expand_dims((unigrams + bigrams) / ops.sqrt(length), -1)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "buckets": self.buckets}


def fit_ngram_branch(
    model: keras.Model,
    model_cfg,
    train,
    validation,
    log: Callable[[str], None],
) -> dict:
    """Fit the n-gram model and the stacking, fold both into ``model``; the report."""
    from sklearn.linear_model import LogisticRegression

    from training.calibrate import logits_of
    from training.model import layers_of

    vocab, buckets = model_cfg.vocab_size, model_cfg.ngram_buckets
    x_train = ngram_features(train.ids, vocab, buckets)
    ratios = nb_ratios(x_train, train.y)
    scale = sp.diags(ratios)
    x_train = x_train @ scale
    x_val = ngram_features(validation.ids, vocab, buckets) @ scale
    accuracy, fitted = {}, {}
    for c in C_GRID:
        lr = LogisticRegression(C=c, solver="liblinear", max_iter=2000)
        fitted[c] = lr.fit(x_train, train.y, sample_weight=train.weights)
        accuracy[c] = float(np.mean((lr.decision_function(x_val) > 0) == validation.y))
    best = max(C_GRID, key=lambda c: (accuracy[c], -c))  # ties: the stronger regularisation
    weights = ratios * fitted[best].coef_[0]
    ngram_val = x_val @ fitted[best].coef_[0] + fitted[best].intercept_[0]

    rnn_val = logits_of(model, model_cfg, validation)[:, 0]
    stack = LogisticRegression(C=1e4).fit(np.stack([rnn_val, ngram_val], axis=1), validation.y)
    (a, b), c = stack.coef_[0], stack.intercept_[0]
    layers = layers_of(model, model_cfg)
    layers["ngram"].table.assign((b * weights).astype(np.float32)[:, None])
    kernel, bias = layers["output"].get_weights()
    kernel = kernel * a  # the RNN's features are scaled by a; the n-gram logit (last row) by 1
    kernel[-1] = 1.0
    layers["output"].set_weights([kernel, a * bias + b * fitted[best].intercept_[0] + c])

    stacked_val = a * rnn_val + b * ngram_val + c
    report = {
        "buckets": buckets,
        "features_used": int(np.count_nonzero(weights)),
        "C": best,
        "ngram_val_accuracy": {str(k): round(v, 4) for k, v in accuracy.items()},
        "rnn_val_accuracy": round(float(np.mean((rnn_val > 0) == validation.y)), 4),
        "stacked_val_accuracy": round(float(np.mean((stacked_val > 0) == validation.y)), 4),
        "stacking": {
            "rnn": round(float(a), 4),
            "ngram": round(float(b), 4),
            "bias": round(float(c), 4),
        },
    }
    log(
        f"n-gram branch: {report['features_used']:,} of {buckets:,} buckets used; validation "
        f"accuracy by C {report['ngram_val_accuracy']} (C = {best:g} kept); RNN "
        f"{report['rnn_val_accuracy']:.4f}, stacked {report['stacked_val_accuracy']:.4f} "
        f"(weights {a:.3f} RNN, {b:.3f} n-gram)"
    )
    return report
