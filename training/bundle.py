"""Write a model bundle: manifest.json (with file hashes and self-check texts) + MODEL_CARD.md.

python -m training.bundle <bundle dirs>   # re-render their cards (after a card change)
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from sentiment_core.bundle import file_entries, sha256_file, verify_files
from sentiment_core.encoder import TextEncoder
from sentiment_core.manifest import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    BundleError,
    Manifest,
    parse_manifest,
    read_manifest,
)
from sentiment_core.tokenizer import PAD_ID, UNK_ID
from training.card import model_card

THRESHOLD = 0.5
LIBRARIES = (
    "tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime", "tokenizers", "numpy",
    "scikit-learn",
)  # fmt: skip


def write_bundle(
    bundle_dir: Path,
    *,
    name: str,
    version: str,
    config: dict,
    labels: list[str],
    encoder: TextEncoder,
    metrics: dict,
    variants: dict[str, str],
    reference_texts: list[str],
) -> Manifest:
    """The card, then the manifest over every file, checked by ``parse_manifest`` (what the
    service reads) before it is written."""
    from training.export import INPUT_NAME, onnx_scores

    outputs = onnx_scores(bundle_dir / "model.onnx", encoder.encode_ids(reference_texts))
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": _git_commit(),
        "libraries": {"python": platform.python_version(), **_library_versions()},
        "hyperparameters": config,
        "model_file": "model.onnx",
        "tokenizer_file": "tokenizer.json",
        "variants": variants,
        "input": {
            "name": INPUT_NAME,
            "dtype": "int32",
            "max_length": encoder.max_length,
            "truncation": encoder.truncation,
            "padding": "post",
            "pad_id": PAD_ID,
            "unk_id": UNK_ID,
            "vocab_size": encoder.vocab_size,
        },
        "labels": labels,
        **_head(labels, outputs.shape[1]),
        "metrics": _headline_metrics(metrics),
        "reference": _references(reference_texts, outputs),
    }
    (bundle_dir / "MODEL_CARD.md").write_text(model_card(manifest, metrics))
    manifest["files"] = file_entries(bundle_dir, skip_suffixes=(".keras", ".log"))
    typed = parse_manifest(manifest)  # what the service will read, checked before writing
    (bundle_dir / MANIFEST_FILE).write_text(typed.to_json())
    return typed


def refresh_card(bundle_dir: Path) -> Manifest:
    """Re-render MODEL_CARD.md from the bundle's own manifest and metrics.json, so a card
    format change reaches committed bundles; only the card and its hash change. Every
    other file must still match the manifest (``BundleError`` naming any that does not)."""
    card_file = bundle_dir / "MODEL_CARD.md"
    typed = read_manifest(bundle_dir)
    others = {name: entry for name, entry in typed.files.items() if name != card_file.name}
    verify_files(bundle_dir, typed.model_copy(update={"files": others}))
    manifest = json.loads((bundle_dir / MANIFEST_FILE).read_text())
    metrics = json.loads((bundle_dir / "metrics.json").read_text())
    card_file.write_text(model_card(manifest, metrics))
    entry = {"sha256": sha256_file(card_file), "bytes": card_file.stat().st_size}
    manifest["files"][card_file.name] = entry
    typed = parse_manifest(manifest)
    (bundle_dir / MANIFEST_FILE).write_text(typed.to_json())
    return typed


def _head(labels: list[str], width: int) -> dict:
    """Sigmoid: one column, P(labels[1]), threshold; softmax: a column per label, argmax."""
    from training.export import OUTPUT_NAME, SOFTMAX_OUTPUT_NAME

    if width == 1:
        return {
            "output": {"name": OUTPUT_NAME, "kind": "sigmoid", "meaning": f"P({labels[1]})"},
            "decision": {"rule": "threshold", "threshold": THRESHOLD},
        }
    return {
        "output": {
            "name": SOFTMAX_OUTPUT_NAME,
            "kind": "softmax",
            "meaning": "one probability per label, in the order of labels",
        },
        "decision": {"rule": "argmax"},
    }


def _references(texts: list[str], outputs: np.ndarray) -> list[dict]:
    if outputs.shape[1] == 1:
        return [{"text": t, "score": float(row[0])} for t, row in zip(texts, outputs, strict=True)]
    return [
        {"text": t, "probabilities": [float(p) for p in row]}
        for t, row in zip(texts, outputs, strict=True)
    ]


def _headline_metrics(metrics: dict) -> dict:
    """What GET /model(s) shows: pooled and per-source test figures (compact), the
    baseline's beside them, validation, parity; the full figures stay in metrics.json."""
    keep = ("test", "validation", "out_of_domain", "int8", "parity", "fused_recurrent_node")
    out = {k: metrics[k] for k in keep if k in metrics}
    out["sources"] = {
        source: {split: compact(figures) for split, figures in per_split.items()}
        for source, per_split in metrics.get("sources", {}).items()
    }
    training = metrics.get("training", {})
    out["training"] = {k: v for k, v in training.items() if k != "history"}
    return out


def compact(figures: dict) -> dict:
    """The headline numbers of one ``label_metrics`` result (no confusion matrix)."""
    keep = ("n", "accuracy", "macro_f1", "average_recall", "polar_accuracy", "ece", "roc_auc")
    return {k: figures[k] for k in keep if figures.get(k) is not None}


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _library_versions() -> dict[str, str]:
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.bundle",
        description="Re-render each bundle's MODEL_CARD.md from its manifest and metrics.json.",
    )
    parser.add_argument("bundles", nargs="+", type=Path, help="bundle directories")
    for bundle in parser.parse_args(argv).bundles:
        try:
            refresh_card(bundle)
        except BundleError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{bundle}: MODEL_CARD.md re-rendered")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
