"""sentence-transformers' all-mpnet-base-v2: sentence vectors for the teacher.

MPNet as Hugging Face's ``modeling_mpnet`` computes it (absolute positions counted from
``padding_idx + 1``, one relative-position bias of 32 buckets shared by the 12 layers,
post-norm blocks, exact GELU), then the model's mean pooling and an L2 norm, written with
TensorFlow's ops (the training job has TensorFlow; torch is not a dependency). The known
answers in tests/training/test_teacher.py are torch's values (matched to 2e-6; tested to 1e-5).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

HIDDEN, HEADS, LAYERS = 768, 12, 12
HEAD_DIM = HIDDEN // HEADS
BUCKETS, MAX_DISTANCE = 32, 128
PAD_ID = 1  # also MPNet's padding_idx: positions start after it
EPS = 1e-5


class MpnetEncoder:
    """Texts → (n, 768) unit vectors. ``max_tokens`` cuts longer texts (the model's 384)."""

    def __init__(self, folder: Path, max_tokens: int = 384):
        import tensorflow as tf
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        arrays = load_file(str(folder / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.no_padding()  # batches are padded here, by length
        self._relative = arrays["encoder.relative_attention_bias.weight"]
        self._w = {k: tf.constant(v) for k, v in arrays.items() if v.dtype == np.float32}
        # q, k and v as one product: one large matrix multiply instead of three.
        self._qkv = [
            (
                tf.concat([self._w[f"{_layer(i)}attention.attn.{m}.weight"] for m in "qkv"], 0),
                tf.concat([self._w[f"{_layer(i)}attention.attn.{m}.bias"] for m in "qkv"], 0),
            )
            for i in range(LAYERS)
        ]
        spec = [tf.TensorSpec([None, None], tf.int64), tf.TensorSpec([None, None], tf.float32)]
        spec.append(tf.TensorSpec([None, HEADS, None, None], tf.float32))
        self._forward = tf.function(self._graph, input_signature=spec, reduce_retracing=True)

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        progress: Callable[[int, float], None] | None = None,
    ) -> np.ndarray:
        """Unit sentence vectors, in the texts' order (batches of similar lengths)."""
        encodings = self.tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out = np.zeros((len(texts), HIDDEN), np.float32)
        started = time.monotonic()
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.full((len(rows), width), PAD_ID, np.int64)
            mask = np.zeros((len(rows), width), np.float32)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n], mask[r, :n] = encodings[i].ids, 1.0
            out[rows] = self._forward(ids, mask, self._bias(mask)).numpy()
            if progress:
                progress(start + len(rows), time.monotonic() - started)
        return out

    def _bias(self, mask: np.ndarray) -> np.ndarray:
        """(batch, heads, width, width): relative-position bias; padding masked out."""
        width = mask.shape[1]
        relative = np.arange(width)[None, :] - np.arange(width)[:, None]
        bias = self._relative[relative_buckets(relative)].transpose(2, 0, 1)[None]
        return (bias + (1.0 - mask[:, None, None, :]) * -1e9).astype(np.float32)

    def _graph(self, ids, mask, bias):
        import tensorflow as tf

        w = self._w
        batch, width = tf.shape(ids)[0], tf.shape(ids)[1]
        positions = tf.cast(tf.cumsum(mask, 1) * mask, tf.int64) + PAD_ID
        x = tf.gather(w["embeddings.word_embeddings.weight"], ids)
        x += tf.gather(w["embeddings.position_embeddings.weight"], positions)
        x = tf.reshape(self._norm(x, "embeddings.LayerNorm"), [batch * width, HIDDEN])
        for i in range(LAYERS):  # tokens as rows of one matrix: large products
            x = self._block(x, bias, i, batch, width)
        x = tf.reshape(x, [batch, width, HIDDEN]) * mask[..., None]
        pooled = tf.reduce_sum(x, 1) / tf.maximum(tf.reduce_sum(mask, 1, keepdims=True), 1e-9)
        return tf.math.l2_normalize(pooled, 1)

    def _block(self, x, bias, i: int, batch, width):
        import tensorflow as tf

        p = _layer(i)
        qkv = tf.matmul(x, self._qkv[i][0], transpose_b=True) + self._qkv[i][1]
        qkv = tf.transpose(tf.reshape(qkv, [batch, width, 3, HEADS, HEAD_DIM]), [2, 0, 3, 1, 4])
        scores = tf.matmul(qkv[0], qkv[1], transpose_b=True) / math.sqrt(HEAD_DIM) + bias
        context = tf.matmul(tf.nn.softmax(scores, -1), qkv[2])
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch * width, HIDDEN])
        x = self._norm(self._dense(context, p + "attention.attn.o") + x, p + "attention.LayerNorm")
        hidden = tf.nn.gelu(self._dense(x, p + "intermediate.dense"), approximate=False)
        return self._norm(self._dense(hidden, p + "output.dense") + x, p + "output.LayerNorm")

    def _dense(self, x, name: str):
        import tensorflow as tf

        return tf.matmul(x, self._w[name + ".weight"], transpose_b=True) + self._w[name + ".bias"]

    def _norm(self, x, name: str):
        import tensorflow as tf

        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        scale = tf.math.rsqrt(variance + EPS) * self._w[name + ".weight"]
        return (x - mean) * scale + self._w[name + ".bias"]


def _layer(i: int) -> str:
    return f"encoder.layer.{i}."


def relative_buckets(relative: np.ndarray) -> np.ndarray:
    """MPNet's (T5's) bidirectional buckets: exact up to 8 apart, logarithmic to 128."""
    half = BUCKETS // 2
    n = -relative
    out = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    exact = half // 2
    spread = np.log(np.maximum(n, 1) / exact) / math.log(MAX_DISTANCE / exact)
    large = np.minimum(exact + (spread * (half - exact)).astype(np.int64), half - 1)
    return out + np.where(n < exact, n, large)
