"""The Keras model: Embedding → (Bi)LSTM/GRU/SimpleRNN → [pooling] → Dense(sigmoid or softmax)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import ops

from training.ngram import NgramLogit

CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}
POOLINGS = ("last", "last+mean+max")


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    embedding_dim: int
    units: int
    cell: str = "lstm"
    bidirectional: bool = True
    embedding_dropout: float = 0.0
    dropout: float = 0.0
    # "last": the final hidden state(s). "last+mean+max": also the mean and max of the
    # per-token outputs over the real (unpadded) tokens, which helps on long reviews.
    pooling: str = "last"
    # 1: one sigmoid unit, P(labels[1]); N >= 2: a softmax over N labels.
    outputs: int = 1
    # > 0: an n-gram branch's logits join the features (training/ngram.py).
    ngram_buckets: int = 0

    @classmethod
    def from_training_config(cls, config: dict, vocab_size: int) -> ModelConfig:
        """The model part of a training config (``config.json``); vocab size as built.

        Bundles written before N-class heads have no ``labels`` in config.json: sigmoid.
        """
        names = {f.name for f in dataclasses.fields(cls)} - {"vocab_size", "outputs"}
        labels = config.get("labels") or ["negative", "positive"]
        head = config.get("head", "auto")
        softmax = head == "softmax" or (head == "auto" and len(labels) > 2)
        return cls(
            vocab_size=vocab_size,
            outputs=len(labels) if softmax else 1,
            **{k: v for k, v in config.items() if k in names},
        )


def load_trained_model(bundle_dir: Path) -> keras.Model:
    """Rebuild a bundle's Keras model from its config.json and keras.weights.h5."""
    config = json.loads((bundle_dir / "config.json").read_text())
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    model = build_model(ModelConfig.from_training_config(config, manifest["input"]["vocab_size"]))
    model.load_weights(bundle_dir / "keras.weights.h5")
    return model


@keras.saving.register_keras_serializable("sentiment")
class MaskedPooling(keras.layers.Layer):
    """Mean and max over time of the RNN outputs, counting only real tokens (id != 0).

    The mask comes from the token ids, not from Keras' implicit mask, so the same ops
    appear in the ONNX graph and padded steps never matter, whatever they hold.
    """

    def call(self, sequence, input_ids):
        real = ops.expand_dims(ops.cast(ops.greater(input_ids, 0), sequence.dtype), -1)
        mean = ops.sum(sequence * real, axis=1) / ops.maximum(ops.sum(real, axis=1), 1.0)
        maximum = ops.max(sequence * real + (real - 1.0) * 1e4, axis=1)
        return ops.concatenate([mean, maximum], axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None


def build_model(cfg: ModelConfig, export_twin: bool = False) -> keras.Model:
    """The training model, or its export twin (``export_twin=True``).

    The twin has the same layers and weights but no Keras mask. tf2onnx turns its
    recurrent layer into one fused ONNX ``LSTM`` node, and training/export.py then wires
    the real lengths into the node's ``sequence_lens``, which masks exactly as Keras did.
    Both models read the final states from ``return_state``, which maps to ``Y_h``.
    """
    if cfg.cell not in CELLS:
        raise ValueError(f"unknown cell {cfg.cell!r}; expected one of {sorted(CELLS)}")
    if cfg.pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {cfg.pooling!r}; expected one of {POOLINGS}")
    ids = keras.Input(shape=(None,), dtype="int32", name="input_ids")
    embedding = keras.layers.Embedding(
        cfg.vocab_size, cfg.embedding_dim, mask_zero=not export_twin, name="embedding"
    )
    out = after_embedding(_new_layers(cfg), cfg, embedding(ids), ids)
    return keras.Model(ids, out, name="sentiment_rnn")


def _layer_names(cfg: ModelConfig) -> dict[str, str]:
    """Each role's layer name: ``_new_layers`` names them so, ``layers_of`` finds them so."""
    return {
        "embedding_dropout": "embedding_dropout",
        "rnn": f"bi_{cfg.cell}" if cfg.bidirectional else cfg.cell,
        "pooling": "pooling",
        "ngram": "ngram_logit",
        "features": "features",
        "dropout": "dropout",
        "output": "score" if cfg.outputs == 1 else "probabilities",
    }


def _new_layers(cfg: ModelConfig) -> dict[str, keras.layers.Layer]:
    """The layers after the embedding, by role (``after_embedding`` calls them)."""
    names = _layer_names(cfg)
    layers: dict[str, keras.layers.Layer] = {}
    if cfg.embedding_dropout:
        # Drops whole embedding channels: regularises the large embedding table.
        layers["embedding_dropout"] = keras.layers.SpatialDropout1D(
            cfg.embedding_dropout, name=names["embedding_dropout"]
        )
    pooled = cfg.pooling != "last"
    rnn = CELLS[cfg.cell](cfg.units, name=cfg.cell, return_state=True, return_sequences=pooled)
    layers["rnn"] = keras.layers.Bidirectional(rnn, name=names["rnn"]) if cfg.bidirectional else rnn
    if pooled:
        layers["pooling"] = MaskedPooling(name=names["pooling"])
    if cfg.ngram_buckets:
        layers["ngram"] = NgramLogit(
            cfg.vocab_size, cfg.ngram_buckets, cfg.outputs, name=names["ngram"]
        )
    layers["features"] = keras.layers.Concatenate(name=names["features"])
    if cfg.dropout:
        layers["dropout"] = keras.layers.Dropout(cfg.dropout, name=names["dropout"])
    if cfg.outputs == 1:
        layers["output"] = keras.layers.Dense(1, activation="sigmoid", name=names["output"])
    else:
        layers["output"] = keras.layers.Dense(
            cfg.outputs, activation="softmax", name=names["output"]
        )
    return layers


def layers_of(model: keras.Model, cfg: ModelConfig) -> dict[str, keras.layers.Layer]:
    """A built model's layers after the embedding, by role, as ``_new_layers`` made them."""
    present = {layer.name for layer in model.layers}
    return {
        role: model.get_layer(name) for role, name in _layer_names(cfg).items() if name in present
    }


def after_embedding(layers: dict, cfg: ModelConfig, x, ids, mask=None, training=None):
    """The model from the embedded tokens ``x`` on: the one definition of the forward pass,
    called on symbolic inputs by ``build_model`` (the mask then comes from the embedding)
    and on tensors by adversarial training (the mask given: ``x`` is perturbed)."""
    if "embedding_dropout" in layers:
        x = layers["embedding_dropout"](x, training=training)
    rnn = layers["rnn"]
    outputs = rnn(x, training=training) if mask is None else rnn(x, mask=mask, training=training)
    # Outputs: [sequence-or-last, *forward_states, *backward_states]; an LSTM has two
    # states per direction (h, c), GRU/SimpleRNN one (h).
    states = 2 if cfg.cell == "lstm" else 1
    finals = [outputs[1], outputs[1 + states]] if cfg.bidirectional else [outputs[1]]
    features = finals + ([layers["pooling"](outputs[0], ids)] if "pooling" in layers else [])
    if "ngram" in layers:
        features.append(layers["ngram"](ids))  # last: fit_ngram_branch sets its kernel row
    x = layers["features"](features) if len(features) > 1 else features[0]
    if "dropout" in layers:
        x = layers["dropout"](x, training=training)
    return layers["output"](x)
