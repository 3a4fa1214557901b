"""Train a sentiment RNN on one or more sources, export it to ONNX, verify it, write a bundle.

Run as ``sentiment-train [--config FILE] [--flags]`` (``--help`` describes every flag).
Top to bottom:

1. config: flags over the config file (docs/training.md) → saved beside the model
2. data: every source read, labels mapped, bad rows counted; validation = held-out groups
   of each source's training rows (IMDB: movies), or its validation files
3. tokenizer: vocabulary from the training rows only, saved as tokenizer.json
4. model: Embedding → (Bi)LSTM → Dense (sigmoid for two labels, softmax for more),
   length-bucketed batches, early stopping on the pooled validation loss; optionally
   started from word vectors and/or a language model pretrained on the training texts;
   optionally an n-gram branch fit afterwards and stacked with it on validation
5. export: tf2onnx → one fused ONNX LSTM node; ORT vs Keras parity on texts of every source
6. evaluate once, at the end, through onnxruntime: every test split, per source and pooled,
   beside the TF-IDF + logistic regression baseline trained on the same rows
7. optional int8 variant, kept only within 0.3 accuracy points on validation
8. bundle: model.onnx, tokenizer.json, manifest.json, MODEL_CARD.md, curves.png,
   confusion.png, config.json (+ train_config.toml), metrics.json
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from sentiment_core.bundle import promote
from training.cli import (
    SetupError,
    check_training_stack,
    check_vectors,
    check_writable,
    fail,
    models_folder,
    parse_args,
    shown_path,
)
from training.config import Config
from training.config_file import ConfigError, Plan, load_plan
from training.data import DatasetError
from training.teacher import teach
from training.teacher.spec import SPANS_SOURCE
from training.teacher.weights import TeacherError, check_teacher_installed

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__all__ = ["Config", "main", "parse_args", "run"]


def run(cfg: Config) -> Path:
    """The whole job; returns the bundle directory. A failed run leaves no folder behind."""
    plan = load_plan(cfg)
    version = cfg.version or timestamp_version()
    out_dir = models_folder(cfg) / version
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} already exists; pick another --version")
    work_dir = out_dir.with_name(out_dir.name + ".partial")
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        _job(cfg, plan, version, work_dir)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    work_dir.rename(out_dir)  # appears complete or not at all
    return out_dir


def _job(cfg: Config, plan: Plan, version: str, work_dir: Path) -> None:
    import keras

    from training.report import evaluate_bundle

    started = time.monotonic()
    keras.utils.set_random_seed(cfg.weights_seed)
    rng = np.random.default_rng(cfg.seed)  # subsets, sampling, then batch order
    log = _logger(work_dir / "train.log")
    log(f"config: {cfg.as_dict()}")
    labels = list(plan.labels)
    config = {**cfg.as_dict(), "labels": labels, "sources": _sources_json(plan)}

    # -- 2. data -----------------------------------------------------------------------
    corpus = _load_data(cfg, plan, rng, log)
    teacher = teach(plan.teacher, corpus, plan.labels, log)  # [teacher]: spans, soft targets
    if cfg.weights_seed != cfg.seed:  # --seed's rows and splits; other weights and batches
        rng = np.random.default_rng(cfg.weights_seed)

    # -- 3. tokenizer, encoded rows, loss weights ------------------------------------------
    encoder, splits, class_weights = _encode(cfg, plan, corpus, work_dir, log)
    if teacher:
        splits[0].targets = teacher.soft_targets(splits[0].y, len(labels))

    # -- 4. model ----------------------------------------------------------------------
    model, model_cfg, history, fit_seconds, init = _fit(
        cfg, config, encoder, splits, rng, work_dir, log
    )

    # -- 5-7. export + parity, evaluation (test splits once), baseline, int8 -----------------
    metrics = evaluate_bundle(cfg, labels, model, model_cfg, encoder, corpus, splits, work_dir, log)
    metrics["class_weights"] = class_weights
    metrics["training"] = {
        "fit_seconds": round(fit_seconds, 1),
        "epochs_run": len(history["loss"]),
        "best_epoch": int(np.argmin(history["val_loss"])) + 1,
        "history": {k: [float(v) for v in vals] for k, vals in history.items()},
        **init,  # "vectors", "pretraining": the initial weights; "calibration": temperature
    }
    if teacher:
        metrics["training"]["teacher"] = teacher.report

    # -- 8. bundle ---------------------------------------------------------------------------
    metrics["training"]["wall_seconds"] = round(time.monotonic() - started, 1)
    _write_bundle(cfg, plan, version, config, encoder, corpus, metrics, history, work_dir)
    log(f"done in {time.monotonic() - started:.0f} s")


def _load_data(cfg: Config, plan: Plan, rng, log):
    from training.sources import LoadOptions, load_corpus, require_rows

    options = LoadOptions(
        plan.labels, cfg.val_fraction, cfg.seed, cfg.limit, cfg.data, cfg.drop_test_overlap
    )
    corpus = load_corpus(plan.sources, options, rng)
    for report in corpus.reports.values():
        log(f"data: {report.summary()}")
    require_rows(corpus, plan.labels)
    return corpus


def _encode(cfg: Config, plan: Plan, corpus, work_dir: Path, log):
    """The vocabulary from the training rows only; each row's ids, label and loss weight
    (its source's weight × its label's, by --class-weight)."""
    from sentiment_core.encoder import TextEncoder
    from sentiment_core.tokenizer import train_tokenizer
    from training.fit import encode_rows
    from training.sources.splits import class_weights

    tokenizer = train_tokenizer((e.text for e in corpus.train), cfg.vocab_size)
    encoder = TextEncoder(tokenizer, cfg.max_length, cfg.truncation)
    tokenizer.save(str(work_dir / "tokenizer.json"))
    labels = plan.labels
    source_weight = {s.name: s.weight for s in plan.sources}
    overrides = {s.name: s.class_weight for s in plan.sources if s.class_weight}
    if plan.teacher:  # the spans: the teacher's label mix as it is, each span weighing 1
        overrides[SPANS_SOURCE] = "none"
    per_label = class_weights(corpus.train, labels, source_weight, cfg.class_weight, overrides)
    if cfg.class_weight != "none" or overrides:
        for source, weights in per_label.items():
            log(f"class weights {source}: {', '.join(f'{k} {v:.3f}' for k, v in weights.items())}")

    def weight_of(example) -> float:
        # Validation rows of a source with no training rows (none here yet) weigh 1.
        label_weight = per_label.get(example.source, {}).get(example.label, 1.0)
        return source_weight.get(example.source, 1.0) * label_weight

    splits = (
        encode_rows(corpus.train, encoder, labels, weight_of),
        encode_rows(corpus.validation, encoder, labels, weight_of),
        encode_rows(corpus.test, encoder, labels),
    )
    log(f"tokenizer: {encoder.vocab_size} ids, max_length {cfg.max_length} ({cfg.truncation})")
    return encoder, splits, per_label


def _fit(cfg: Config, config: dict, encoder, splits, rng, work_dir: Path, log):
    from training.calibrate import calibrate
    from training.fit import fit_model
    from training.model import ModelConfig, build_model
    from training.ngram import fit_ngram_branch
    from training.pretrain import initial_weights

    model_cfg = ModelConfig.from_training_config(config, encoder.vocab_size)
    # 4a. word vectors and/or language-model pretraining (training/pretrain.py); off: None
    vocab = encoder.tokenizer.get_vocab()
    initial, init_report = initial_weights(cfg, model_cfg, splits[0], vocab, log)
    model, history, fit_seconds = fit_model(
        model_cfg, cfg, splits[0], splits[1], rng, log, initial_weights=initial
    )
    best = int(np.argmin(history["val_loss"])) + 1
    log(f"fit: {fit_seconds:.0f} s; best: epoch {best} of {len(history['loss'])}")
    # 4b. optional n-gram branch, fit and stacked on validation (training/ngram.py)
    if model_cfg.ngram_buckets:  # on labelled rows only: a span's label is a teacher's guess
        labelled = splits[0].without_source(SPANS_SOURCE)
        init_report["ngram"] = fit_ngram_branch(model, model_cfg, labelled, splits[1], log)
    # 4c. probabilities calibrated on validation; labels unchanged (training/calibrate.py)
    init_report["calibration"] = calibrate(model, model_cfg, splits[1], cfg.calibration, log)
    # Weights only (no optimizer state): with config.json they rebuild the exact Keras model.
    inference_copy = build_model(model_cfg)
    inference_copy.set_weights(model.get_weights())
    inference_copy.save_weights(work_dir / "keras.weights.h5")
    return model, model_cfg, history, fit_seconds, init_report


def _write_bundle(cfg, plan, version, config, encoder, corpus, metrics, history, work_dir):
    from training.bundle import write_bundle
    from training.card import confusion_splits
    from training.plots import plot_confusions, plot_curves
    from training.report import reference_texts

    title = f"{cfg.name} {version}"
    plot_curves(history, work_dir / "curves.png", title)
    split = confusion_splits(metrics)  # the test splits; validation when a config has none
    shown = {k: s[split]["confusion"] for k, s in metrics["sources"].items() if split in s}
    if len(shown) > 1:
        shown["pooled"] = metrics[split]["confusion"]
    plot_confusions(shown, work_dir / "confusion.png", f"{title}: {split} splits")
    variants = metrics.pop("variants")
    (work_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (work_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if plan.text:
        (work_dir / "train_config.toml").write_text(plan.text)
    write_bundle(
        work_dir,
        name=cfg.name,
        version=version,
        config=config,
        labels=list(plan.labels),
        encoder=encoder,
        metrics=metrics,
        variants=variants,
        reference_texts=reference_texts(corpus),
    )


def _sources_json(plan: Plan) -> list[dict]:
    """The sources as trained on (paths resolved), for config.json and the manifest."""
    out = []
    for spec in plan.sources:
        item = {k: v for k, v in vars(spec).items() if v not in ((), None, "")}
        out.append(json.loads(json.dumps(item, default=str)))
    return out


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
    """Exit code 0 with the bundle's path; 2 with a one-line message on a known failure."""
    try:
        cfg = parse_args(argv)  # bad flags and config files stop here, before any data
        if cfg.promote and cfg.limit and not cfg.force:
            raise ConfigError("--promote with --limit: a smoke run is promoted only with --force")
        check_training_stack()
        check_vectors(cfg)
        if load_plan(cfg).teacher:
            check_teacher_installed()  # before any data loads
        folder = models_folder(cfg)
        new_folder = not folder.exists()
        check_writable(folder)
    except (ConfigError, SetupError, DatasetError, TeacherError) as exc:
        return fail(str(exc))
    from training.export import ExportError

    try:
        bundle = run(cfg)
    except BaseException as exc:
        if new_folder and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a failed first run of a name leaves no empty <models-dir>/<name>
        if isinstance(
            exc, ConfigError | DatasetError | ExportError | FileExistsError | TeacherError
        ):
            return fail(str(exc))
        raise
    print(f"bundle written: {shown_path(bundle, cfg)}")
    if cfg.promote:
        promote(bundle.parent.parent, cfg.name, bundle.name, force=cfg.force)
        print(f"promoted: {cfg.name} serves {bundle.name} from the next start")
    else:  # say what serving it takes (a smoke run is easily taken for a model)
        smoke = f" --force (a smoke run on {cfg.limit} texts)" if cfg.limit else ""
        print(f"not served: sentiment-promote {cfg.name} {bundle.name}{smoke} serves it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
