"""Train the sentiment RNN on IMDB, export it to ONNX, verify it, and write a model bundle.

Run as ``sentiment-train [--flags]`` (``sentiment-train --help`` lists them). Top to bottom:

1. config (defaults below; every field is a flag) → saved beside the model as config.json
2. data: IMDB train/test; validation = 10% of the *train movies* (grouped, never random)
3. tokenizer: vocabulary from the training part only, saved as tokenizer.json
4. model: Embedding → (Bi)LSTM → Dense(sigmoid), length-bucketed batches, early stopping
5. export: tf2onnx → one fused ONNX LSTM node; ORT vs Keras parity on 2,000 test reviews
6. evaluate once on the full 25,000-review test set *through onnxruntime*; also on
   hand-written non-IMDB texts
7. optional int8 variant, kept only within 0.3 accuracy points of the float model
8. bundle: model.onnx, tokenizer.json, manifest.json, MODEL_CARD.md, curves.png, config.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Config:
    # data
    data: str = ""  # IMDB .tar.gz or directory; "" = $SENTIMENT_DATA or ../shared/data/...
    val_fraction: float = 0.1  # share of training *movies* held out for validation
    limit: int = 0  # >0: use only this many train (and test) reviews (smoke runs)
    # tokenizer
    vocab_size: int = 20000
    max_length: int = 800  # 97% of IMDB reviews fit whole
    truncation: str = "head+tail"
    # model
    cell: str = "lstm"
    bidirectional: bool = True
    embedding_dim: int = 128
    units: int = 64
    embedding_dropout: float = 0.5
    dropout: float = 0.5
    pooling: str = "last+mean+max"  # or "last" (final states only)
    # optimisation
    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 2e-3
    lr_decay: float = 0.5  # learning rate multiplied by this every epoch (1.0 = constant)
    weight_decay: float = 1e-4
    patience: int = 1  # epochs without a better validation loss before stopping
    seed: int = 1337
    # export and bundle
    parity_texts: int = 2000
    quantize: bool = True
    models_dir: str = "models"
    name: str = "sentiment-lstm"
    version: str = ""  # "" = UTC timestamp


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(prog="sentiment-train", description=__doc__.split("\n")[0])
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            kind = {"int": int, "float": float}.get(f.type, str)
            parser.add_argument(flag, type=kind, default=f.default)
    parser.add_argument("--download", action="store_true", help="fetch the official tarball first")
    args = vars(parser.parse_args(argv))
    download = args.pop("download")
    cfg = Config(**args)
    if download:
        from training.data import download_imdb

        target = PROJECT_ROOT / "data" / "aclImdb_v1.tar.gz"
        cfg.data = str(download_imdb(target))
    return cfg


def run(cfg: Config) -> Path:
    """The whole job; returns the bundle directory."""
    import keras
    import tensorflow as tf

    from sentiment_core.batching import length_sorted_batches, spread_over_lengths
    from sentiment_core.encoder import TextEncoder, pad_batch
    from sentiment_core.tokenizer import train_tokenizer
    from training.bundle import write_bundle
    from training.data import length_bucketed_batches, load_imdb, split_by_movie
    from training.evaluate import classification_metrics, plot_curves
    from training.export import (
        FUSED_OPS,
        export_onnx,
        onnx_scores,
        quantize_int8,
        verify_parity,
    )
    from training.model import ModelConfig, build_model

    started = time.monotonic()
    version = cfg.version or timestamp_version()
    out_dir = (PROJECT_ROOT / cfg.models_dir / cfg.name / version).resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} already exists; pick another --version")
    work_dir = out_dir.with_name(out_dir.name + ".partial")
    work_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    log = _logger(work_dir / "train.log")
    log(f"config: {dataclasses.asdict(cfg)}")

    # -- 2. data ---------------------------------------------------------------------
    data = load_imdb(cfg.data or None)
    train_all, test = data["train"], data["test"]
    if cfg.limit:  # smoke runs: a class-balanced, seeded subset of each split
        train_all = _subset(train_all, cfg.limit, rng)
        test = _subset(test, cfg.limit, rng)
    train, val = split_by_movie(train_all, cfg.val_fraction, cfg.seed)
    log(f"data: {len(train)} train / {len(val)} validation (by movie) / {len(test)} test")

    # -- 3. tokenizer ----------------------------------------------------------------
    tokenizer = train_tokenizer((r.text for r in train), cfg.vocab_size)
    encoder = TextEncoder(tokenizer, cfg.max_length, cfg.truncation)
    tokenizer.save(str(work_dir / "tokenizer.json"))

    def encode(reviews):
        return encoder.encode_ids([r.text for r in reviews]), np.array([r.label for r in reviews])

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = map(encode, (train, val, test))
    log(f"tokenizer: {encoder.vocab_size} ids, max_length {cfg.max_length} ({cfg.truncation})")

    # -- 4. model ----------------------------------------------------------------------
    model_cfg = ModelConfig.from_training_config(dataclasses.asdict(cfg), encoder.vocab_size)
    model = build_model(model_cfg)
    steps_per_epoch = -(-len(x_train) // cfg.batch_size)
    learning_rate = keras.optimizers.schedules.ExponentialDecay(
        cfg.learning_rate, decay_steps=steps_per_epoch, decay_rate=cfg.lr_decay
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=learning_rate, weight_decay=cfg.weight_decay, clipnorm=1.0
        ),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )

    def dataset(sequences, labels, shuffle: bool):
        lengths = np.array([len(s) for s in sequences])
        spec = (
            tf.TensorSpec((None, None), tf.int32),
            tf.TensorSpec((None,), tf.float32),
        )

        def batches():
            order = (
                length_bucketed_batches(lengths, cfg.batch_size, rng)
                if shuffle
                else length_sorted_batches(lengths, 256)
            )
            for idx in order:
                yield pad_batch([sequences[i] for i in idx]), labels[idx].astype(np.float32)

        return tf.data.Dataset.from_generator(batches, output_signature=spec).prefetch(2)

    fit_started = time.monotonic()
    history = model.fit(
        dataset(x_train, y_train, shuffle=True),
        validation_data=dataset(x_val, y_val, shuffle=False),
        epochs=cfg.epochs,
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=cfg.patience, restore_best_weights=True
            ),
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: log(f"epoch {epoch + 1}: {_fmt(logs)}")
            ),
        ],
        verbose=2,
    ).history
    fit_seconds = time.monotonic() - fit_started
    best_epoch = int(np.argmin(history["val_loss"])) + 1
    log(f"fit: {fit_seconds:.0f}s, best epoch {best_epoch}")
    # Weights only (no optimizer state): with config.json they rebuild the exact Keras
    # model for parity tests and the seed-style benchmark.
    # (A fresh copy: saving the trained model itself would also store the optimizer state.)
    inference_copy = build_model(model_cfg)
    inference_copy.set_weights(model.get_weights())
    inference_copy.save_weights(work_dir / "keras.weights.h5")

    # -- 5. export + parity ----------------------------------------------------------------
    onnx_path = work_dir / "model.onnx"
    ops = export_onnx(model, model_cfg, onnx_path)
    fused = FUSED_OPS[cfg.cell] in ops and "Loop" not in ops
    parity_idx = spread_over_lengths([len(s) for s in x_test], cfg.parity_texts)
    parity = verify_parity(model, onnx_path, [x_test[i] for i in parity_idx])
    log(f"export: ops {ops}; fused recurrent node: {fused}; parity {parity}")

    # -- 6. evaluate: the test set, once, through onnxruntime --------------------------
    val_scores = onnx_scores(onnx_path, x_val)[:, 0]
    test_scores = onnx_scores(onnx_path, x_test)[:, 0]
    ood = _out_of_domain()
    ood_scores = onnx_scores(onnx_path, encoder.encode_ids([t["text"] for t in ood]))[:, 0]
    metrics = {
        "test": classification_metrics(y_test, test_scores),
        "validation": classification_metrics(y_val, val_scores),
        "out_of_domain": classification_metrics([t["label"] for t in ood], ood_scores),
        "parity": parity,
        "training": {
            "fit_seconds": round(fit_seconds, 1),
            "epochs_run": len(history["loss"]),
            "best_epoch": best_epoch,
            "history": {k: [float(v) for v in vals] for k, vals in history.items()},
        },
        "onnx_ops": ops,
        "fused_recurrent_node": fused,
    }
    log(f"test: {_fmt(metrics['test'])}")
    log(f"out-of-domain: {_fmt(metrics['out_of_domain'])}")

    # -- 7. optional int8 variant --------------------------------------------------------
    variants = {}
    if cfg.quantize:
        int8_path = work_dir / "model.int8.onnx"
        quantize_int8(onnx_path, int8_path)
        int8_metrics = classification_metrics(y_test, onnx_scores(int8_path, x_test)[:, 0])
        drop = metrics["test"]["accuracy"] - int8_metrics["accuracy"]
        kept = drop <= 0.003
        metrics["int8"] = {**int8_metrics, "accuracy_drop": drop, "kept": kept}
        log(f"int8: accuracy {int8_metrics['accuracy']:.4f} (drop {drop:+.4f}); kept: {kept}")
        if kept:
            variants["int8"] = "model.int8.onnx"
        else:
            int8_path.unlink()

    # -- 8. bundle ---------------------------------------------------------------------------
    plot_curves(history, work_dir / "curves.png", f"{cfg.name} {version}")
    metrics["training"]["wall_seconds"] = round(time.monotonic() - started, 1)
    (work_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (work_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    write_bundle(
        work_dir,
        name=cfg.name,
        version=version,
        config=dataclasses.asdict(cfg),
        encoder=encoder,
        metrics=metrics,
        variants=variants,
        reference_texts=_reference_texts(ood, test),
    )
    work_dir.rename(out_dir)  # appears complete or not at all
    log(f"done in {time.monotonic() - started:.0f}s: {out_dir}")
    return out_dir


def _subset(reviews, n: int, rng: np.random.Generator):
    pos = [r for r in reviews if r.label == 1]
    neg = [r for r in reviews if r.label == 0]
    take = n // 2
    pick = [pos[i] for i in rng.permutation(len(pos))[:take]]
    pick += [neg[i] for i in rng.permutation(len(neg))[: n - take]]
    return pick


def _out_of_domain() -> list[dict]:
    path = Path(__file__).with_name("out_of_domain.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _reference_texts(ood: list[dict], test) -> list[str]:
    """Texts the service re-scores at load time: short, long, truncated, odd characters."""
    picks = [t["text"] for t in ood[:6]]
    by_length = sorted(test, key=lambda r: len(r.text))
    picks += [by_length[0].text, by_length[len(by_length) // 2].text, by_length[-1].text]
    picks += ["Café\u00a0crème — “naïve” ﬁlm!!<br /><br />Didn’t love it.", "\u0301"]
    return picks


def _fmt(d: dict) -> str:
    return ", ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in d.items()
        if not isinstance(v, dict | list)
    )


def _logger(path: Path):
    handle = path.open("a")

    def log(message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        print(line, flush=True)
        handle.write(line + "\n")
        handle.flush()

    return log


def timestamp_version() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    from training.data import DatasetError
    from training.export import ExportError

    try:
        bundle = run(cfg)
    except (DatasetError, ExportError, FileExistsError) as exc:
        print(f"sentiment-train: error: {exc}", file=sys.stderr)
        return 2
    print(f"bundle written: {bundle}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
