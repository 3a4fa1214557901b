"""The pretraining cache: same inputs hit, any change misses, a bad entry is never trusted."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training import pretrain_cache as cache

SHAPES = {"embedding": [(10, 4)], "bi_lstm": [(4, 8), (2, 8), (8,)]}


def weights(seed: int = 0) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {k: [rng.normal(size=s).astype(np.float32) for s in v] for k, v in SHAPES.items()}


INPUTS = {
    "texts": cache.texts_digest(["a good film", "bad"]),
    "vocabulary": "v1",
    "encoder": {"vocab_size": 10, "embedding_dim": 4, "units": 2},
    "lm": {"epochs": 1, "output_vocab": 5},
    "seed": 1,
}


def test_the_same_inputs_find_the_saved_entry(tmp_path):
    key = cache.cache_key(INPUTS)
    assert cache.load(tmp_path, key, SHAPES) is None  # nothing yet: a miss, no error
    saved = weights()
    cache.save(tmp_path, key, saved, INPUTS, {"perplexity": [{"next": 9.5}]})
    assert cache.cache_key(json.loads(json.dumps(INPUTS))) == key  # stable across processes
    loaded, report = cache.load(tmp_path, key, SHAPES)
    assert report == {"perplexity": [{"next": 9.5}]}
    for layer, arrays in saved.items():
        assert all(np.array_equal(a, b) for a, b in zip(arrays, loaded[layer], strict=True))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


@pytest.mark.parametrize(
    "change",
    [
        {"texts": cache.texts_digest(["a good film", "bad!"])},
        {"texts": cache.texts_digest(["a good filmbad"])},  # same characters, other boundary
        {"vocabulary": "v2"},
        {"encoder": {"vocab_size": 10, "embedding_dim": 4, "units": 3}},
        {"lm": {"epochs": 2, "output_vocab": 5}},
        {"seed": 2},
    ],
)
def test_any_changed_input_is_another_key(change):
    assert cache.cache_key({**INPUTS, **change}) != cache.cache_key(INPUTS)


def test_array_digest_sees_values_dtype_and_shape():
    a = np.arange(6, dtype=np.float32)
    assert cache.array_digest(a) == cache.array_digest(a.copy())
    assert cache.array_digest(a) != cache.array_digest(a.reshape(2, 3))
    assert cache.array_digest(a) != cache.array_digest(a.astype(np.float64))
    b = a.copy()
    b[3] += 1e-6
    assert cache.array_digest(a) != cache.array_digest(b)


def _corrupt_weights(entry):
    data = bytearray((entry / "weights.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (entry / "weights.npz").write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_corrupt_weights, "SHA-256"),
        (lambda entry: (entry / "weights.npz").write_bytes(b""), "SHA-256"),
        (lambda entry: (entry / "weights.npz").unlink(), "unreadable"),
        (lambda entry: (entry / "entry.json").write_text("{not json"), "unreadable"),
        (lambda entry: (entry / "entry.json").unlink(), "unreadable"),
    ],
)
def test_a_damaged_entry_is_refused_with_its_reason(tmp_path, damage, reason):
    key = cache.cache_key(INPUTS)
    entry = cache.save(tmp_path, key, weights(), INPUTS, {})
    damage(entry)
    with pytest.raises(cache.CacheEntryError, match=reason):
        cache.load(tmp_path, key, SHAPES)
    # Saving again (what the job does after recomputing) replaces it with a good one.
    cache.save(tmp_path, key, weights(1), INPUTS, {})
    loaded, _ = cache.load(tmp_path, key, SHAPES)
    assert np.array_equal(loaded["embedding"][0], weights(1)["embedding"][0])


def test_an_entry_of_other_shapes_or_another_key_is_refused(tmp_path):
    key = cache.cache_key(INPUTS)
    cache.save(tmp_path, key, weights(), INPUTS, {})
    with pytest.raises(cache.CacheEntryError, match="shapes"):
        cache.load(tmp_path, key, {**SHAPES, "embedding": [(11, 4)]})
    other = cache.cache_key({**INPUTS, "seed": 5})
    (tmp_path / key).rename(tmp_path / other)  # an entry filed under the wrong name
    with pytest.raises(cache.CacheEntryError, match="another key"):
        cache.load(tmp_path, other, SHAPES)
