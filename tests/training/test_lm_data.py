"""Language-model targets: next/previous word at each position, padding and "other" masked."""

from __future__ import annotations

import numpy as np

from sentiment_core.encoder import pad_batch
from training.lm_data import (
    OTHER,
    LMBatching,
    cut_windows,
    lm_batches,
    lm_targets,
    output_classes,
    sample_positions,
)


def test_frequent_words_are_their_own_class_and_the_rest_is_other():
    # ids 2..4 are the three most frequent words (output_vocab 3): classes 1..3
    assert output_classes(np.array([0, 1, 2, 3, 4, 5, 900]), 3).tolist() == [
        OTHER, OTHER, 1, 2, 3, OTHER, OTHER,
    ]  # fmt: skip


def test_forward_predicts_the_next_word_and_backward_the_previous_one():
    batch = pad_batch([[2, 3, 4, 5], [6, 7]])  # post-padded: second row is [6, 7, 0, 0]
    positions = np.tile(np.arange(4), (2, 1))
    targets = lm_targets(batch, positions, output_vocab=100)
    next_classes, next_weights = targets["next"]
    prev_classes, prev_weights = targets["previous"]
    # row 0: next of 2,3,4 is 3,4,5 (class id-1); the last word has no next word
    assert next_classes[0, :3].tolist() == [2, 3, 4] and next_weights[0].tolist() == [1, 1, 1, 0]
    # row 0: previous of 3,4,5 is 2,3,4; the first word has no previous word
    assert prev_classes[0, 1:].tolist() == [1, 2, 3] and prev_weights[0].tolist() == [0, 1, 1, 1]
    # row 1: padding neither predicts nor is predicted, in either direction; position 2 is
    # padding whose previous word (7) is real, and must still weigh 0
    assert next_classes[1, 0] == 6 and next_weights[1].tolist() == [1, 0, 0, 0]
    assert prev_classes[1, 1] == 5 and prev_weights[1].tolist() == [0, 1, 0, 0]


def test_targets_at_sampled_positions_match_the_full_grid():
    rng = np.random.default_rng(0)
    batch = pad_batch([rng.integers(1, 50, n).tolist() for n in (9, 5, 7)])
    full = lm_targets(batch, np.tile(np.arange(9), (3, 1)), output_vocab=20)
    positions = sample_positions(batch.shape, 0.4, rng)
    assert positions.shape == (3, 4) and all(len(set(row)) == 4 for row in positions.tolist())
    part = lm_targets(batch, positions, output_vocab=20)
    for name in ("next", "previous"):
        for k in range(2):  # classes, weights
            expected = np.take_along_axis(full[name][k], positions, axis=1)
            assert np.array_equal(part[name][k], expected)


def test_other_class_is_predicted_or_masked_as_asked():
    batch = pad_batch([[2, 900, 3, 1]])  # 900 is rare, 1 is [UNK]
    positions = np.arange(4)[None, :]
    kept = lm_targets(batch, positions, output_vocab=5)["next"]
    masked = lm_targets(batch, positions, output_vocab=5, mask_other=True)["next"]
    assert kept[0][0].tolist()[:3] == [OTHER, 2, OTHER]
    assert kept[1][0].tolist() == [1, 1, 1, 0]
    assert masked[1][0].tolist() == [0, 1, 0, 0]  # only "3" (class 2) is left to predict


def test_windows_cut_texts_and_drop_single_tokens():
    windows = cut_windows([list(range(2, 12)), [5], [7, 8, 9]], window=4)
    assert [w.tolist() for w in windows] == [[2, 3, 4, 5], [6, 7, 8, 9], [10, 11], [7, 8, 9]]


def test_an_epoch_draws_the_asked_number_of_windows_with_mean_weight_one():
    rng = np.random.default_rng(1)
    windows = cut_windows([rng.integers(2, 40, n).tolist() for n in rng.integers(2, 30, 50)], 8)
    batching = LMBatching(batch_size=7, output_vocab=10, target_share=0.5, mask_other=False)
    batches = list(lm_batches(windows, 20, batching, rng))
    assert sum(b[0][0].shape[0] for b in batches) == 20 and len(batches) == 3
    for (ids, positions), targets, weights in batches:
        assert positions.shape[0] == ids.shape[0] and set(targets) == {"next", "previous"}
        for name, w in weights.items():
            assert w.shape == targets[name].shape
            assert np.isclose(w.mean(), 1.0) or w.sum() == 0
