"""Fine-tuning: per-layer learning rates and gradual unfreezing, measured on real updates."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras

from training.config import Config
from training.finetune import (
    LayerwiseAdamW,
    layer_depths,
    make_optimizer,
    set_initial_weights,
    stage_scales,
)
from training.model import ModelConfig, build_model

LR = 0.01


def test_stages_unfreeze_one_layer_per_epoch_from_the_top():
    assert stage_scales(0, 0.5, 0) == [1.0, 0.5, 0.25]  # discriminative rates only
    assert stage_scales(0, 1.0, 2) == [1.0, 0.0, 0.0]
    assert stage_scales(1, 1.0, 2) == [1.0, 1.0, 0.0]
    assert stage_scales(2, 1.0, 2) == [1.0, 1.0, 1.0]
    assert stage_scales(1, 0.5, 1) == [1.0, 0.5, 0.25]


def tiny_model():
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(50, 4, 3, pooling="last+mean+max"))
    assert set(layer_depths(model).values()) == {0, 1, 2}
    return model


def one_step(model, optimizer, epoch: int = 0) -> dict[str, float]:
    """The largest change of each layer's weights after one step of ``optimizer``."""
    optimizer.set_epoch(epoch) if isinstance(optimizer, LayerwiseAdamW) else None
    model.compile(optimizer=optimizer, loss="binary_crossentropy")
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers}
    ids = np.random.default_rng(0).integers(1, 50, (8, 6)).astype("int32")
    model.train_on_batch(ids, np.array([0, 1] * 4, dtype="float32"))
    changes = {}
    for layer in model.layers:
        if before[layer.name]:
            after = layer.get_weights()
            changes[layer.name] = max(
                float(np.abs(a - b).max()) for a, b in zip(after, before[layer.name], strict=True)
            )
    return changes


def test_each_layer_learns_at_its_own_rate():
    # Adam's first step is linear in the learning rate: each layer moves by its scale times
    # what plain AdamW moves it, from the same weights on the same batch.
    plain = one_step(tiny_model(), keras.optimizers.AdamW(learning_rate=LR, weight_decay=0.0))
    model = tiny_model()
    optimizer = LayerwiseAdamW(layer_depths(model), 0.5, 0, learning_rate=LR, weight_decay=0.0)
    changes = one_step(model, optimizer)
    assert changes["score"] == pytest.approx(plain["score"], rel=1e-3)
    assert changes["bi_lstm"] == pytest.approx(plain["bi_lstm"] * 0.5, rel=1e-3)
    assert changes["embedding"] == pytest.approx(plain["embedding"] * 0.25, rel=1e-3)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_frozen_layers_do_not_move_not_even_by_weight_decay(weight_decay):
    model = tiny_model()
    optimizer = LayerwiseAdamW(
        layer_depths(model), 1.0, 2, learning_rate=LR, weight_decay=weight_decay
    )
    changes = one_step(model, optimizer, epoch=0)
    assert changes["score"] > 0 and changes["bi_lstm"] == 0 and changes["embedding"] == 0
    assert optimizer.set_epoch(1) == [1.0, 1.0, 0.0]
    changes = one_step(model, optimizer, epoch=1)
    assert changes["bi_lstm"] > 0 and changes["embedding"] == 0


def test_without_fine_tuning_options_the_optimizer_is_plain_adamw():
    model = tiny_model()
    optimizer, callbacks = make_optimizer(model, Config(), 1e-3, print)
    assert type(optimizer) is keras.optimizers.AdamW and callbacks == []
    optimizer, callbacks = make_optimizer(model, Config(finetune_unfreeze=1), 1e-3, print)
    assert isinstance(optimizer, LayerwiseAdamW) and len(callbacks) == 1


@pytest.mark.parametrize(
    ("given", "head", "zeroed"),
    [(("embedding", "bi_lstm"), "zeros", True), (("embedding", "bi_lstm"), "random", False),
     (("embedding",), "zeros", False)],
)  # fmt: skip
def test_the_output_layer_starts_at_zero_only_on_a_pretrained_encoder(given, head, zeroed):
    model = tiny_model()
    keras.utils.set_random_seed(1)
    source = build_model(ModelConfig(50, 4, 3, pooling="last+mean+max"))
    weights = {name: source.get_layer(name).get_weights() for name in given}
    set_initial_weights(model, weights, head)
    for name in given:
        got = model.get_layer(name).get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(got, weights[name], strict=True))
    assert (not np.any(model.get_layer("score").get_weights()[0])) == zeroed
