"""Step 4a of the job: the encoder's initial weights, from word vectors, from language-model
pretraining, or both (vectors first, then pretraining from them). Off by default.

The language model reads the training rows' texts only (every source's, deduplicated):
never a validation or test text. ``--pretrain-heldout`` of those texts are kept out of it
to measure its perplexity. The result is cached under ``--pretrain-cache`` by a hash of
everything it depends on (training/pretrain_cache.py), so fine-tuning runs reuse it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from training import pretrain_cache
from training.config import Config
from training.fit import Rows
from training.lm_data import LMBatching, cut_windows
from training.model import ModelConfig
from training.progress import plural

PROJECT_ROOT = Path(__file__).resolve().parents[1]
Weights = dict[str, list[np.ndarray]]


def lm_settings(cfg: Config) -> dict:
    """Every setting that changes what pretraining computes (part of the cache key)."""
    return {
        "epochs": cfg.pretrain_epochs,
        "tokens": cfg.pretrain_tokens,
        "window": cfg.pretrain_window,
        "output_vocab": cfg.pretrain_output_vocab,
        "target_share": cfg.pretrain_target_share,
        "other": cfg.pretrain_other,
        "learning_rate": cfg.pretrain_learning_rate,
        "batch_size": cfg.pretrain_batch_size,
        "heldout": cfg.pretrain_heldout,
    }


def initial_weights(
    cfg: Config, model_cfg: ModelConfig, train: Rows, vocab: dict[str, int], log: Callable
) -> tuple[Weights | None, dict]:
    """The classifier's starting layers (None: random init, as without these options) and
    a report for metrics.json ({"vectors": ..., "pretraining": ...})."""
    weights: Weights = {}
    report: dict = {}
    if cfg.vectors != "none":
        from training.vectors import embedding_init, load_sources

        random_init = _random_embedding(model_cfg, cfg.weights_seed)
        matrix, report["vectors"] = embedding_init(load_sources(cfg.vectors), vocab, random_init)
        weights["embedding"] = [matrix]
        found = report["vectors"]["found"]
        log(f"vectors {cfg.vectors}: {found:,} of {len(vocab) - 2:,} words initialised")
    if cfg.pretrain:
        weights, report["pretraining"] = pretrain_encoder(
            cfg, model_cfg, train, vocab, weights, log
        )
        if cfg.pretrain_transfer == "embedding":  # the same language model: same cache entry
            weights = {"embedding": weights["embedding"]}
    return weights or None, report


def _random_embedding(model_cfg: ModelConfig, seed: int) -> np.ndarray:
    """The embedding's own initialisation (Keras' uniform ±0.05), seeded."""
    import keras

    init = keras.initializers.RandomUniform(-0.05, 0.05, seed=seed)
    return keras.ops.convert_to_numpy(init((model_cfg.vocab_size, model_cfg.embedding_dim)))


def lm_texts(train: Rows) -> tuple[list[str], list]:
    """The training rows' texts, each once (first occurrence), with their token ids."""
    seen: set[str] = set()
    texts, ids = [], []
    for example, sequence in zip(train.examples, train.ids, strict=True):
        if example.text not in seen:
            seen.add(example.text)
            texts.append(example.text)
            ids.append(sequence)
    return texts, ids


def cache_inputs(cfg: Config, model_cfg: ModelConfig, texts, vocab, init: Weights) -> dict:
    import keras

    vocab_text = json.dumps(sorted(vocab.items(), key=lambda item: item[1]))
    return {
        "texts": pretrain_cache.texts_digest(texts),
        "vocabulary": hashlib.sha256(vocab_text.encode()).hexdigest(),
        "encoding": {"max_length": cfg.max_length, "truncation": cfg.truncation},
        "encoder": {
            k: getattr(model_cfg, k)
            for k in ("vocab_size", "embedding_dim", "units", "cell", "bidirectional")
        },
        "lm": lm_settings(cfg),
        "seed": cfg.weights_seed,
        "initial_embedding": (
            pretrain_cache.array_digest(init["embedding"][0]) if "embedding" in init else None
        ),
        "keras": keras.__version__,
    }


def pretrain_encoder(
    cfg: Config, model_cfg: ModelConfig, train: Rows, vocab: dict, init: Weights, log: Callable
) -> tuple[Weights, dict]:
    """The pretrained embedding and recurrent layer, from the cache or trained now."""
    from training.lm_model import build_lm, encoder_layers

    texts, ids = lm_texts(train)
    inputs = cache_inputs(cfg, model_cfg, texts, vocab, init)
    key = pretrain_cache.cache_key(inputs)
    model = build_lm(model_cfg, cfg.pretrain_output_vocab + 1)
    layers = encoder_layers(model_cfg)
    shapes = {name: [w.shape for w in model.get_layer(name).get_weights()] for name in layers}
    folder = (PROJECT_ROOT / cfg.pretrain_cache).resolve() if cfg.pretrain_cache else None
    if folder is not None:
        try:
            if (found := pretrain_cache.load(folder, key, shapes)) is not None:
                log(f"pretrain: cache hit {key} ({folder})")
                return found[0], {**found[1], "key": key, "cache": "hit"}
        except pretrain_cache.CacheEntryError as exc:
            log(f"pretrain: cache entry {key} not used ({exc}); pretraining again")
    for name, arrays in init.items():
        model.get_layer(name).set_weights(arrays)
    report = _pretrain(cfg, model_cfg, model, texts, ids, log)
    weights = {name: model.get_layer(name).get_weights() for name in layers}
    status = "off"
    if folder is not None:
        try:
            pretrain_cache.save(folder, key, weights, inputs, report)
            status = "miss"
        except OSError as exc:  # e.g. a read-only install: the job goes on without it
            log(f"pretrain: cache entry not written ({exc}); pass --pretrain-cache to keep it")
            status = "unwritable"
    return weights, {**report, "key": key, "cache": status}


def _pretrain(cfg: Config, model_cfg: ModelConfig, model, texts, ids, log: Callable) -> dict:
    from training.lm_model import directions, train_lm

    rng = np.random.default_rng(cfg.weights_seed)
    held = rng.random(len(texts)) < cfg.pretrain_heldout
    windows = cut_windows([s for s, h in zip(ids, held, strict=True) if not h], cfg.pretrain_window)
    heldout = cut_windows([s for s, h in zip(ids, held, strict=True) if h], cfg.pretrain_window)
    batching = LMBatching(
        cfg.pretrain_batch_size,
        cfg.pretrain_output_vocab,
        cfg.pretrain_target_share,
        cfg.pretrain_other == "mask",
        directions(model_cfg),
    )
    log(
        f"pretrain: {len(texts) - int(held.sum()):,} texts ({len(windows):,} windows), "
        f"{int(held.sum()):,} held out for perplexity; {plural(cfg.pretrain_epochs, 'epoch')}"
    )
    started = time.monotonic()
    report = train_lm(model, windows, heldout, batching, lm_settings(cfg), rng, log)
    report["texts"] = len(texts) - int(held.sum())
    report["heldout_texts"] = int(held.sum())
    report["seconds"] = round(time.monotonic() - started, 1)
    return report
