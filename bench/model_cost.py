"""Accuracy against inference cost for trained bundles (the README's model table).

    python -m bench.model_cost models/sentiment-lstm/<v1> /path/to/<v2> ...

For each bundle: test accuracy and ROC-AUC from its manifest (measured once, by the
training job, through onnxruntime; an N-class bundle's accuracy is over all its test
splits together and it has no AUC), and texts/s through onnxruntime on this machine:
the same 2,000 IMDB test reviews for every bundle, length-sorted batches of 64, one
session, intra-op threads = cores. Median of 3 timed passes after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from sentiment_core.batching import length_sorted_batches
from service.model.loader import load_bundle
from training.data import load_imdb


def sample_texts(n: int = 2000, seed: int = 0) -> list[str]:
    reviews = load_imdb(splits=("test",))["test"]
    rng = np.random.default_rng(seed)
    return [reviews[i].text for i in rng.choice(len(reviews), n, replace=False)]


def texts_per_second(bundle, texts: list[str], batch_size: int = 64, repeats: int = 3) -> float:
    ids = bundle.encoder.encode_ids(texts)
    cuts = length_sorted_batches([len(s) for s in ids], batch_size)
    batches = [[ids[i] for i in idx] for idx in cuts]
    bundle.score_ids(batches[0])  # warm-up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            bundle.score_ids(batch)
        timings.append(time.perf_counter() - start)
    return len(texts) / statistics.median(timings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    texts = sample_texts(args.texts)
    threads = os.cpu_count() or 1
    rows = []
    for path in args.bundles:
        bundle = load_bundle(path, intra_op_threads=threads)
        m = bundle.manifest
        hp, metrics = m.hyperparameters, m.metrics
        rows.append(
            {
                "bundle": str(path),
                "cell": hp["cell"],
                "bidirectional": hp["bidirectional"],
                "units": hp["units"],
                "max_length": hp["max_length"],
                "pooling": hp.get("pooling", "last"),
                "vocab_size": hp["vocab_size"],
                "test_accuracy": metrics["test"]["accuracy"],
                "test_roc_auc": metrics["test"].get("roc_auc"),  # binary bundles only
                "validation_accuracy": metrics["validation"]["accuracy"],
                "out_of_domain_accuracy": metrics["out_of_domain"]["accuracy"],
                "best_epoch": metrics["training"]["best_epoch"],
                "fit_seconds": metrics["training"]["fit_seconds"],
                "texts_per_s": round(texts_per_second(bundle, texts), 1),
            }
        )
    print(
        "| bundle | model | test acc | AUC | val acc | non-IMDB acc | best epoch | fit s | texts/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        model = (
            f"{'Bi' if r['bidirectional'] else ''}{r['cell']}({r['units']}), "
            f"{r['max_length']} tok, {r['pooling']}"
        )
        print(
            f"| {Path(r['bundle']).name} | {model} | {r['test_accuracy']:.4f} | "
            f"{_figure(r['test_roc_auc'])} | {r['validation_accuracy']:.4f} | "
            f"{r['out_of_domain_accuracy']:.3f} | {r['best_epoch']} | {r['fit_seconds']:.0f} | "
            f"{r['texts_per_s']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
