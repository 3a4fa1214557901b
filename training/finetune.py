"""Fine-tuning from pretrained layers: discriminative learning rates and gradual unfreezing
(Howard & Ruder 2018), as one AdamW whose step is scaled per layer.

Layers by depth from the top: 0 the output layer (and everything above the recurrent
layer), 1 the recurrent layer, 2 the embedding. Each variable's learning rate (and weight
decay) is multiplied by ``lr_ratio ** depth``, and by 0 while its layer is still frozen: with
``unfreeze = N``, epoch 1 trains depth 0 only, epoch 2 depths 0-1, and so on, and from
epoch N + 1 on every layer trains. The scales are optimizer variables, changed between
epochs by ``Unfreeze`` without retracing. A frozen layer's gradients are still computed
(the cost is that of a normal epoch), only not applied.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from training.model import CELLS

DEPTHS = 3


def layer_depths(model: keras.Model) -> dict[str, int]:
    """Each trainable variable's path → its depth (0 output side, 1 recurrent, 2 embedding)."""
    recurrent = set(CELLS) | {f"bi_{cell}" for cell in CELLS}
    depths = {}
    for layer in model.layers:
        depth = 2 if layer.name == "embedding" else 1 if layer.name in recurrent else 0
        for variable in layer.trainable_weights:
            depths[variable.path] = depth
    return depths


def stage_scales(epoch: int, lr_ratio: float, unfreeze: int) -> list[float]:
    """The learning-rate scale of each depth in ``epoch`` (0-based)."""
    return [
        lr_ratio**depth if (unfreeze == 0 or epoch >= unfreeze or depth <= epoch) else 0.0
        for depth in range(DEPTHS)
    ]


class LayerwiseAdamW(keras.optimizers.AdamW):
    """AdamW with a per-depth scale on each variable's learning rate and weight decay."""

    def __init__(self, depths: dict[str, int], lr_ratio: float, unfreeze: int, **kwargs):
        super().__init__(**kwargs)
        self._depth_by_path = depths
        self.lr_ratio, self.unfreeze = lr_ratio, unfreeze
        self._epoch = 0
        self._depth_of_key: dict = {}

    def build(self, var_list):
        super().build(var_list)
        # Created with their values: Keras may initialise optimizer variables after build
        # returns, which would undo an assign made here.
        initial = stage_scales(self._epoch, self.lr_ratio, self.unfreeze)
        self.scales = [
            self.add_variable(
                (), initializer=keras.initializers.Constant(value), name=f"lr_scale_depth_{d}"
            )
            for d, value in enumerate(initial)
        ]
        for variable in var_list:
            self._depth_of_key[self._var_key(variable)] = self._depth_by_path.get(variable.path, 0)

    def set_epoch(self, epoch: int) -> list[float]:
        self._epoch = epoch
        scales = stage_scales(epoch, self.lr_ratio, self.unfreeze)
        if self.built and hasattr(self, "scales"):
            for variable, value in zip(self.scales, scales, strict=True):
                variable.assign(value)
        return scales

    def _scale(self, variable):
        return self.scales[self._depth_of_key.get(self._var_key(variable), 0)]

    def update_step(self, gradient, variable, learning_rate):
        scale = ops.cast(self._scale(variable), variable.dtype)
        super().update_step(gradient, variable, ops.cast(learning_rate, variable.dtype) * scale)

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return
        for variable in variables:
            if self._use_weight_decay(variable):
                lr = ops.cast(self.learning_rate, variable.dtype)
                scale = ops.cast(self._scale(variable), variable.dtype)
                wd = ops.cast(self.weight_decay, variable.dtype)
                variable.assign(variable - variable * wd * lr * scale)


class Unfreeze(keras.callbacks.Callback):
    """Sets the optimizer's per-depth scales at the start of every epoch."""

    def __init__(self, optimizer: LayerwiseAdamW, log: Callable[[str], None]):
        super().__init__()
        self.layerwise, self.log = optimizer, log
        self.shown: list[float] | None = None

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        scales = self.layerwise.set_epoch(epoch)
        if scales != self.shown:
            names = ("output", "recurrent", "embedding")
            self.log(
                "fine-tune: learning-rate scale "
                + ", ".join(f"{n} {s:g}" for n, s in zip(names, scales, strict=True))
            )
            self.shown = scales


def set_initial_weights(model: keras.Model, weights: dict, head: str) -> None:
    """Set the given layers' weights; with a pretrained encoder (not only an embedding)
    and ``head == "zeros"``, the output layer starts at zero (``--finetune-head``)."""
    for layer, arrays in weights.items():
        model.get_layer(layer).set_weights(arrays)
    if head == "zeros" and any(name != "embedding" for name in weights):
        output = model.layers[-1]
        output.set_weights([np.zeros_like(w) for w in output.get_weights()])


def make_optimizer(model, cfg, schedule, log) -> tuple[keras.optimizers.Optimizer, list]:
    """Plain AdamW (today's) unless a fine-tuning option is set; with its callbacks."""
    common = {"learning_rate": schedule, "weight_decay": cfg.weight_decay, "clipnorm": 1.0}
    if cfg.finetune_lr_ratio == 1.0 and cfg.finetune_unfreeze == 0:
        return keras.optimizers.AdamW(**common), []
    optimizer = LayerwiseAdamW(
        layer_depths(model), cfg.finetune_lr_ratio, cfg.finetune_unfreeze, **common
    )
    return optimizer, [Unfreeze(optimizer, log)]
