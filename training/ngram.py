"""An n-gram branch beside the RNN: logistic regression over the token ids' unigrams and
hashed bigrams, Naive-Bayes-weighted for two labels (NBSVM, Wang & Manning 2012) and
multinomial for more, stacked with the RNN's logits on the validation rows (as Mesnil et
al. 2014 combine NBSVM with an RNN).

The two models err on different reviews: the RNN reads word order and negation, the
n-gram model weighs every phrase of a long review at once. The branch is part of the
Keras model and of the ONNX graph (``NgramLogit``: a Gather over a (buckets, outputs) table),
so the service, the parity check and every bench see one model. It costs a table lookup
per token, nothing beside the LSTM (docs/training.md, "Fourth round").

During the RNN's training the table is zero and frozen, so the branch adds 0 and the RNN
trains exactly as without it. After training, ``fit_ngram_branch`` fits the n-gram model
on the training rows, picks its regularisation by validation accuracy, fits the stacking
(a logistic regression on the two models' logits) on the validation rows, and folds it
into the output layer; the table holds the n-gram model's weights.

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
    """The n-gram model's logits for each text: its features (see the module) times a
    (buckets, outputs) table, plus nothing: the intercepts live in the output layer's bias.

    The table is not trainable: zero while the RNN trains, then set by ``fit_ngram_branch``.
    """

    def __init__(self, vocab_size: int, buckets: int, outputs: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.buckets, self.outputs = vocab_size, buckets, outputs

    def build(self, input_shape):
        self.table = self.add_weight(
            shape=(self.buckets, self.outputs), initializer="zeros", trainable=False, name="table"
        )

    def call(self, input_ids):
        ids = ops.cast(input_ids, "int64")
        real = ops.cast(ops.greater(ids, 0), self.compute_dtype)
        pairs = bigram_index(ids[:, :-1], ids[:, 1:], self.vocab_size, self.buckets)
        pair_real = real[:, :-1] * real[:, 1:]
        unigrams = ops.sum(ops.take(self.table, ids, axis=0) * real[..., None], axis=1)
        bigrams = ops.sum(ops.take(self.table, pairs, axis=0) * pair_real[..., None], axis=1)
        length = ops.maximum(ops.sum(real, axis=1, keepdims=True), 1.0)
        return (unigrams + bigrams) / ops.sqrt(length)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "buckets": self.buckets,
            "outputs": self.outputs,
        }


def fit_ngram_branch(
    model: keras.Model,
    model_cfg,
    train,
    validation,
    log: Callable[[str], None],
) -> dict:
    """Fit the n-gram model and the stacking, fold both into ``model``; the report."""
    from training.calibrate import logits_of
    from training.model import layers_of

    vocab, buckets, outputs = model_cfg.vocab_size, model_cfg.ngram_buckets, model_cfg.outputs
    x_train = ngram_features(train.ids, vocab, buckets)
    x_val = ngram_features(validation.ids, vocab, buckets)
    two_labels = outputs <= 2  # a sigmoid column, or a softmax over two labels
    ratios = np.ones(buckets)
    if two_labels:  # NBSVM: the features scaled by their log-count ratios
        ratios = nb_ratios(x_train, train.y)
        x_train, x_val = x_train @ sp.diags(ratios), x_val @ sp.diags(ratios)
    accuracy, fitted = {}, {}
    for c in C_GRID:
        lr = _logistic(c, two_labels).fit(x_train, train.y, sample_weight=train.weights)
        fitted[c] = _columns(lr, outputs)
        accuracy[c] = _accuracy(x_val @ fitted[c][0] + fitted[c][1], validation.y)
    best = max(C_GRID, key=lambda c: (accuracy[c], -c))  # ties: the stronger regularisation
    coef, intercept = fitted[best]  # (buckets, outputs), (outputs,)
    ngram_val = x_val @ coef + intercept

    rnn_val = logits_of(model, model_cfg, validation)
    both = np.hstack([rnn_val, ngram_val])
    on_both, stack_bias = _columns(_logistic(1e4, two_labels).fit(both, validation.y), outputs)
    on_rnn, on_ngram = on_both[:outputs], on_both[outputs:]  # (in, out) each
    layers = layers_of(model, model_cfg)
    layers["ngram"].table.assign((coef * ratios[:, None]).astype(np.float32))
    kernel, bias = layers["output"].get_weights()
    # The output layer's inputs: the RNN's features, then the table's n-gram logits (last).
    kernel[:-outputs] = kernel[:-outputs] @ on_rnn
    kernel[-outputs:] = on_ngram
    layers["output"].set_weights([kernel, bias @ on_rnn + intercept @ on_ngram + stack_bias])

    report = {
        "buckets": buckets,
        "train_rows": len(train.ids),  # labelled rows only when a teacher adds spans
        "features_used": int(np.count_nonzero(np.any(coef != 0, axis=1))),
        "C": best,
        "ngram_val_accuracy": {str(k): round(v, 4) for k, v in accuracy.items()},
        "rnn_val_accuracy": round(_accuracy(rnn_val, validation.y), 4),
        "stacked_val_accuracy": round(_accuracy(both @ on_both + stack_bias, validation.y), 4),
        "stacking": {
            "rnn": np.round(on_rnn, 4).tolist(),
            "ngram": np.round(on_ngram, 4).tolist(),
            "bias": np.round(stack_bias, 4).tolist(),
        },
    }
    log(
        f"n-gram branch: {report['features_used']:,} of {buckets:,} buckets used; validation "
        f"accuracy by C {report['ngram_val_accuracy']} (C = {best:g} kept); RNN "
        f"{report['rnn_val_accuracy']:.4f}, stacked {report['stacked_val_accuracy']:.4f}"
    )
    return report


def _logistic(c: float, two_labels: bool):
    from sklearn.linear_model import LogisticRegression

    # liblinear for two labels (one logit); lbfgs fits the multinomial (softmax) model.
    return LogisticRegression(C=c, solver="liblinear" if two_labels else "lbfgs", max_iter=2000)


def _columns(fitted, outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """A fitted model's weights as (inputs, outputs) and its intercepts, in the model's
    output columns: a two-label fit has one logit z, which a softmax head over two labels
    reads as the logits (0, z)."""
    coef, intercept = fitted.coef_.T, np.asarray(fitted.intercept_, dtype=np.float64)
    if outputs == 2 and coef.shape[1] == 1:
        coef = np.hstack([np.zeros_like(coef), coef])
        intercept = np.array([0.0, intercept[0]])
    return coef, intercept


def _accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    predicted = (logits[:, 0] > 0).astype(int) if logits.shape[1] == 1 else logits.argmax(axis=1)
    return float(np.mean(predicted == y))
