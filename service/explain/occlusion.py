"""Leave-one-out occlusion: each token's weight is how much the predicted label's
probability falls when that token alone is left out of the text.

``weight_i = P(target | text) - P(target | text without token i)``, where ``target`` is
the label the model predicts for the whole text. Positive: the token pushes towards that
label; negative: against it. The variants are whole texts with one token deleted (not
replaced: the model has no neutral token, and the LSTM reads any length), so a text of
n tokens costs n + 1 model rows of about n tokens each, all in one batcher submission.
Gradient-free: it needs the ONNX model's outputs only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sentiment_core.manifest import Manifest
from sentiment_core.tokenizer import UNK_ID

_EMPTY = np.array([UNK_ID], dtype=np.int32)  # an empty text reads as one unknown word


def leave_one_out(ids: np.ndarray) -> list[np.ndarray]:
    """One variant per token: ``ids`` without it."""
    if len(ids) == 1:
        return [_EMPTY]
    return [np.delete(ids, i) for i in range(len(ids))]


def weights(
    manifest: Manifest, full: Sequence[float], variants: Sequence[Sequence[float]]
) -> tuple[int, np.ndarray]:
    """The predicted label's index for ``full`` and each variant's weight (see above)."""
    target = int(manifest.predicted([full])[0])
    if not variants:
        return target, np.zeros(0)
    probabilities = manifest.probabilities([full, *variants])[:, target]
    return target, probabilities[0] - probabilities[1:]
