"""Score model bundles on a training config's test splits, each the same way: through
onnxruntime and the bundle's own tokenizer, as the service does. For choosing which model
serves by default, and for the README's table of both committed models.

    python -m training.compare --config configs/general.toml models/sentiment-lstm/<v> ...

A binary (negative/positive) bundle is scored on the polar rows of a three-class test set
only (it cannot say neutral); the row counts say which rows each figure covers. The test
splits are the config's: read once per run, never used to choose anything here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from sentiment_core.encoder import TextEncoder
from sentiment_core.manifest import read_manifest
from training.config_file import load_plan
from training.evaluate import label_metrics
from training.export import onnx_scores

HEADLINE = ("polar_accuracy", "accuracy", "average_recall", "macro_f1", "ece")


def bundle_figures(bundle: Path, test) -> dict[str, dict]:
    """{source: figures} of ``bundle`` on the test examples whose label it has."""
    manifest = read_manifest(bundle)
    labels = list(manifest.labels)
    encoder = TextEncoder.from_file(
        bundle / "tokenizer.json", manifest.input.max_length, manifest.input.truncation
    )
    known = [e for e in test if e.label in labels]
    outputs = onnx_scores(bundle / "model.onnx", encoder.encode_ids([e.text for e in known]))
    probs, predicted = manifest.probabilities(outputs), manifest.predicted(outputs)
    truth = np.array([labels.index(e.label) for e in known])
    sources = np.array([e.source for e in known])
    figures = {}
    for source in dict.fromkeys(e.source for e in test):
        idx = np.flatnonzero(sources == source)
        figures[source] = label_metrics(truth[idx], probs[idx], predicted[idx], labels)
        figures[source]["rows"] = f"{len(idx)} of {sum(e.source == source for e in test)}"
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.compare", description=__doc__)
    parser.add_argument("--config", required=True, help="the training config whose tests to use")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("bundles", nargs="+", type=Path, help="bundle directories")
    args = parser.parse_args(argv)

    from training.cli import parse_args
    from training.sources import LoadOptions, load_corpus

    cfg = parse_args(["--config", args.config])
    plan = load_plan(cfg)
    options = LoadOptions(plan.labels, cfg.val_fraction, cfg.seed, imdb_data=cfg.data)
    corpus = load_corpus(plan.sources, options, np.random.default_rng(cfg.seed))
    results = {str(b): bundle_figures(b, corpus.test) for b in args.bundles}
    print("| bundle | source | rows scored | " + " | ".join(HEADLINE) + " |")
    print("|---|---|---|" + "---|" * len(HEADLINE))
    for bundle, per_source in results.items():
        for source, fig in per_source.items():
            cells = [f"{fig[k]:.4f}" if isinstance(fig.get(k), float) else "–" for k in HEADLINE]
            print(f"| {bundle} | {source} | {fig['rows']} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
