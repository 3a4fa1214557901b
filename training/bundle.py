"""Write a model bundle: manifest.json (with file hashes and self-check texts) + MODEL_CARD.md."""

from __future__ import annotations

import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from sentiment_core.bundle import file_entries
from sentiment_core.encoder import TextEncoder
from sentiment_core.manifest import FORMAT_VERSION, MANIFEST_FILE, Manifest, parse_manifest
from sentiment_core.tokenizer import PAD_ID, UNK_ID

LABELS = ["negative", "positive"]
THRESHOLD = 0.5
LIBRARIES = ("tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime", "tokenizers", "numpy")


def write_bundle(
    bundle_dir: Path,
    *,
    name: str,
    version: str,
    config: dict,
    encoder: TextEncoder,
    metrics: dict,
    variants: dict[str, str],
    reference_texts: list[str],
) -> Manifest:
    from training.export import INPUT_NAME, OUTPUT_NAME, onnx_scores

    reference_scores = onnx_scores(bundle_dir / "model.onnx", encoder.encode_ids(reference_texts))[
        :, 0
    ]
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
        "output": {"name": OUTPUT_NAME, "kind": "sigmoid", "meaning": "P(positive)"},
        "labels": LABELS,
        "decision": {"rule": "threshold", "threshold": THRESHOLD},
        "metrics": _headline_metrics(metrics),
        "reference": [
            {"text": t, "score": float(s)}
            for t, s in zip(reference_texts, reference_scores, strict=True)
        ],
    }
    (bundle_dir / "MODEL_CARD.md").write_text(model_card(manifest, metrics))
    manifest["files"] = file_entries(bundle_dir, skip_suffixes=(".keras", ".log"))
    typed = parse_manifest(manifest)  # what the service will read, checked before writing
    (bundle_dir / MANIFEST_FILE).write_text(typed.to_json())
    return typed


def _headline_metrics(metrics: dict) -> dict:
    keep = ("test", "validation", "out_of_domain", "int8", "parity", "fused_recurrent_node")
    out = {k: metrics[k] for k in keep if k in metrics}
    training = metrics.get("training", {})
    out["training"] = {k: v for k, v in training.items() if k != "history"}
    return out


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


def model_card(manifest: dict, metrics: dict) -> str:
    hp = manifest["hyperparameters"]
    test = metrics["test"]
    ood = metrics["out_of_domain"]
    cm = test["confusion_matrix"]
    arch = f"{'Bidirectional ' if hp['bidirectional'] else ''}{hp['cell'].upper()}({hp['units']})"
    if hp.get("pooling", "last") != "last":
        arch += " → [final states, mean and max over real tokens]"
    int8 = metrics.get("int8")
    int8_line = (
        f"- int8 variant: accuracy {int8['accuracy']:.4f} "
        f"({'kept' if int8['kept'] else 'discarded'}; gate: within 0.3 points)\n"
        if int8
        else ""
    )
    training = metrics["training"]
    return f"""# Model card: {manifest["name"]} {manifest["version"]}

Binary sentiment classifier: `score` = P(positive); label `positive` when score ≥ {manifest["decision"]["threshold"]}.

## Model
Embedding({hp["vocab_size"]}, {hp["embedding_dim"]}) → {arch} → Dense(1, sigmoid), trained with
Keras 3 and exported with tf2onnx (opset 17). Inputs: token ids from `tokenizer.json`, at most
{hp["max_length"]} tokens ({hp["truncation"]} truncation), post-padded with 0 and masked.

## Data
Large Movie Review Dataset v1.0 (Maas et al., 2011): 25,000 training and 25,000 test IMDB reviews,
balanced, from disjoint sets of movies. {hp["val_fraction"]:.0%} of the training *movies* held out
for validation and early stopping; the test set was scored once, through onnxruntime.

## Figures
- IMDB test ({test["n"]} reviews): accuracy **{test["accuracy"]:.4f}**, ROC-AUC {test["roc_auc"]:.4f},
  F1 {test["f1"]:.4f}, ECE {test["ece"]:.4f}; confusion tn={cm["tn"]} fp={cm["fp"]} fn={cm["fn"]} tp={cm["tp"]}
- Validation (held-out movies): accuracy {metrics["validation"]["accuracy"]:.4f}
- Hand-written non-IMDB texts ({ood["n"]}: product, restaurant, travel, short sentences, negation):
  accuracy {ood["accuracy"]:.4f}
{int8_line}- ONNX vs Keras on {metrics["parity"]["texts"]} test reviews: max |diff| {metrics["parity"]["max_abs_diff"]:.2e}
- Training: {training["epochs_run"]} epochs (best {training["best_epoch"]}), {training["fit_seconds"]:.0f} s fit on CPU

## Intended use and limits
English review-like text (opinions about films, products, services). Trained only on IMDB movie
reviews: domain shift (tweets, sarcasm, mixed or neutral text, other languages) lowers accuracy,
and there is no "neutral" class. Scores are reasonably calibrated on IMDB (ECE above) but not
elsewhere. Reviews longer than {hp["max_length"]} tokens are cut ({hp["truncation"]}). Not for decisions about people.
"""
