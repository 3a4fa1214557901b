"""Load a model bundle: verify every file's hash, open the encoder and the scorer, and
re-score the manifest's reference texts (the self-check).

Nothing here unpickles: the bundle is JSON (manifest, tokenizer) and ONNX protobuf. A
bundle that fails any check raises ``BundleError`` naming what differed, and nothing
from it is used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentiment_core.bundle import read_bundle_tokenizer, verify_files
from sentiment_core.encoder import TextEncoder
from sentiment_core.manifest import BundleError, Manifest, read_manifest
from service.encoding import build_encoder
from service.encoding.encoder import Encoder
from service.inference.scorer import Group, Scorer, open_session

log = logging.getLogger("service.model")

# float32 sums in another batch shape may round differently; anything larger is a bug.
SELF_CHECK_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Speedups:
    """Which speed-ups a loaded model uses (all on by default; settings switch them)."""

    python_encoder: bool = True
    vocab_table: bool = True
    encode_on_loop: bool = True
    grouped_runs: bool = True
    shared_arena: bool = True


@dataclass(frozen=True)
class Bundle:
    """A verified model: manifest + encoder + scorer, used together only."""

    path: Path
    manifest: Manifest
    encoder: Encoder
    scorer: Scorer
    variant: str

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def labels(self) -> list[str]:
        return self.manifest.labels

    @property
    def threshold(self) -> float | None:
        return self.manifest.decision.threshold

    def run_groups(self, groups: list[Group]) -> list[np.ndarray]:
        """The batcher's entry: output rows for each length group (thread-safe)."""
        return self.scorer.run_groups(groups)

    def outputs(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """The model's output rows for encoded texts of any lengths, in order."""
        return self.scorer.score(sequences)

    def score_ids(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """The API's ``score`` for each encoded text (P(positive) for binary bundles)."""
        return self.manifest.scores(self.outputs(sequences))

    def score_texts(self, texts: list[str]) -> np.ndarray:
        return self.score_ids(self.encoder.encode_ids(texts))

    def summary(self) -> dict:
        m = self.manifest
        return {
            "name": m.name,
            "version": m.version,
            "variant": self.variant,
            "created": m.created,
            "labels": m.labels,
            "threshold": m.decision.threshold,
            "decision": m.decision.rule,
            "max_length": m.input.max_length,
            "truncation": m.input.truncation,
            "padding": m.input.padding,
            "vocab_size": m.input.vocab_size,
            "metrics": m.metrics,
            "files": {name: entry.sha256 for name, entry in m.files.items()},
        }


def load_bundle(
    bundle_dir: Path,
    *,
    variant: str = "float",
    intra_op_threads: int = 1,
    speedups: Speedups = Speedups(),
) -> Bundle:
    """Verify and open a bundle, then re-score its reference texts."""
    try:
        bundle_dir = bundle_dir.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # too long, symlink loop, NUL byte
        raise BundleError(f"{bundle_dir}: not a usable path ({type(exc).__name__})") from exc
    try:
        bundle = _load(bundle_dir, variant, intra_op_threads, speedups)
    except OSError as exc:  # unreadable file, a directory where a file should be
        raise BundleError(f"{bundle_dir}: cannot read the bundle ({exc})") from exc
    if variant == "float":  # the reference outputs are the float model's
        self_check(bundle)
    log.info(
        "model bundle loaded",
        extra={"model": bundle.name, "version": bundle.version, "variant": variant},
    )
    return bundle


def _load(bundle_dir: Path, variant: str, intra_op_threads: int, speedups: Speedups) -> Bundle:
    manifest = read_manifest(bundle_dir)
    verify_files(bundle_dir, manifest)
    model_file = manifest.model_file
    if variant != "float":
        model_file = manifest.variants.get(variant, "")
        if not model_file:
            raise BundleError(f"{bundle_dir}: no {variant!r} variant in this bundle")
    # (read_bundle_tokenizer: a tokenizer.json that hashes right but does not parse is refused)
    tokenizer = read_bundle_tokenizer(bundle_dir, manifest)
    reference = TextEncoder(tokenizer, manifest.input.max_length, manifest.input.truncation)
    encoder = build_encoder(
        reference,
        python_path=speedups.python_encoder,
        vocab_table=speedups.vocab_table,
        on_loop=speedups.encode_on_loop,
    )
    scorer = _scorer(bundle_dir / model_file, manifest, intra_op_threads, speedups)
    return Bundle(bundle_dir, manifest, encoder, scorer, variant)


def _scorer(path: Path, manifest: Manifest, intra_op_threads: int, speedups: Speedups) -> Scorer:
    shared = speedups.shared_arena
    if speedups.grouped_runs:
        from service.inference.grouped import grouped_scorer

        return grouped_scorer(path, intra_op_threads, shared)
    return Scorer(open_session(path, intra_op_threads, shared_arena=shared), manifest.input.name)


def self_check(bundle: Bundle) -> None:
    """Score the manifest's reference texts alone and together; compare with training."""
    refs = bundle.manifest.reference
    texts = [r.text for r in refs]
    expected = np.array([r.outputs() for r in refs], dtype=np.float64)
    ids = bundle.encoder.encode_ids(texts)
    together = bundle.outputs(ids)
    alone = np.concatenate([bundle.outputs([one]) for one in ids])
    problems = []
    for i, text in enumerate(texts):
        for how, got in (("batched", together[i]), ("alone", alone[i])):
            if np.max(np.abs(got - expected[i])) > SELF_CHECK_TOLERANCE:
                problems.append(
                    f"reference {i} ({text[:40]!r}) {how}: {_row(got)} != {_row(expected[i])}"
                )
    if problems:
        raise BundleError(f"{bundle.path}: self-check failed: " + "; ".join(problems))


def _row(values: np.ndarray) -> str:
    return ", ".join(f"{v:.7f}" for v in values)
