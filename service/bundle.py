"""Load a model bundle: verify every file's SHA-256, open onnxruntime, self-check.

Nothing here unpickles: the bundle is JSON (manifest, tokenizer) and ONNX protobuf.
A bundle that fails any check raises ``BundleError`` naming exactly what differed, and
nothing from it is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from service.errors import BundleError
from service.grouped import GroupedRunner, shared_weights
from service.packing import pack_by_length
from service.tokenizer import TextEncoder, pad_batch

log = logging.getLogger("service.bundle")

SUPPORTED_FORMAT_VERSIONS = {1}
# float32 sums in a different batch shape may round differently; anything larger is a bug.
SELF_CHECK_TOLERANCE = 1e-5
REQUIRED_KEYS = ("format_version", "name", "version", "input", "labels", "threshold", "files")


@dataclass(frozen=True)
class Bundle:
    """A verified model: manifest + encoder + onnxruntime session, used together only."""

    path: Path
    manifest: dict
    encoder: TextEncoder
    session: ort.InferenceSession
    input_name: str
    variant: str
    grouped: GroupedRunner | None = None  # several groups per call (service/grouped.py)
    # The large weights the sessions read without owning (``shared_weights``): held here
    # for as long as the sessions live, grouped or not.
    weights: dict[str, ort.OrtValue] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def labels(self) -> list[str]:
        return self.manifest["labels"]

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"])

    def score_ids(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """P(positive) for already-encoded texts (any lengths), in order; thread-safe.

        Runs length-sorted sub-batches (service/packing.py): each text's score does not
        depend on its company, and padding stays small.
        """
        scores = np.empty(len(sequences), dtype=np.float32)
        groups = pack_by_length([len(s) for s in sequences])
        batches = [pad_batch([sequences[i] for i in group]) for group in groups]
        if self.grouped is not None:
            outputs = self.grouped.run(batches)
        else:
            outputs = [self.session.run(None, {self.input_name: b})[0] for b in batches]
        for group, out in zip(groups, outputs, strict=True):
            scores[group] = np.asarray(out, dtype=np.float32).reshape(-1)
        return scores

    def score_texts(self, texts: list[str]) -> np.ndarray:
        return self.score_ids(self.encoder.encode_ids(texts))

    def summary(self) -> dict:
        m = self.manifest
        return {
            "name": m["name"],
            "version": m["version"],
            "variant": self.variant,
            "created": m.get("created"),
            "labels": m["labels"],
            "threshold": m["threshold"],
            "max_length": m["input"]["max_length"],
            "truncation": m["input"]["truncation"],
            "padding": m["input"]["padding"],
            "vocab_size": m["input"].get("vocab_size"),
            "metrics": m.get("metrics", {}),
            "files": {k: v["sha256"] for k, v in m["files"].items()},
        }


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def find_latest_bundle(models_root: Path, name: str = "sentiment-lstm") -> Path:
    """The newest complete version directory (versions sort by their timestamp names).

    ``*.partial`` directories are training jobs still writing; they are never served.
    """
    base = models_root / name
    candidates = base.glob("*") if base.is_dir() else []
    versions = sorted(
        p
        for p in candidates
        if p.is_dir() and not p.name.endswith(".partial") and (p / "manifest.json").is_file()
    )
    if not versions:
        raise BundleError(f"no model bundle under {base} (expected {base}/<version>/manifest.json)")
    return versions[-1]


def read_manifest(bundle_dir: Path) -> dict:
    path = bundle_dir / "manifest.json"
    if not path.is_file():
        raise BundleError(f"{path}: manifest.json missing (is {bundle_dir} a model bundle?)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from exc
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise BundleError(f"{path}: manifest lacks {missing}")
    if manifest["format_version"] not in SUPPORTED_FORMAT_VERSIONS:
        raise BundleError(
            f"{path}: format_version {manifest['format_version']} not supported "
            f"(this server reads {sorted(SUPPORTED_FORMAT_VERSIONS)})"
        )
    return manifest


def verify_files(bundle_dir: Path, manifest: dict) -> None:
    problems = []
    for name, info in manifest["files"].items():
        file = bundle_dir / name
        if Path(name).name != name:
            problems.append(f"{name}: file names must not contain paths")
        elif not file.is_file():
            problems.append(f"{name}: missing")
        elif (actual := sha256_file(file)) != info["sha256"]:
            problems.append(f"{name}: sha256 {actual} != manifest {info['sha256']}")
    if problems:
        raise BundleError(f"{bundle_dir}: integrity check failed: " + "; ".join(problems))


def load_bundle(bundle_dir: Path, *, variant: str = "float", intra_op_threads: int = 1) -> Bundle:
    """Verify and open a bundle, then re-score its reference texts (the self-check)."""
    try:
        bundle_dir = bundle_dir.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # too long, symlink loop, NUL byte
        raise BundleError(f"{bundle_dir}: not a usable path ({type(exc).__name__})") from exc
    try:
        return _load_bundle(bundle_dir, variant, intra_op_threads)
    except OSError as exc:  # unreadable file, name too long, a directory where a file should be
        raise BundleError(f"{bundle_dir}: cannot read the bundle ({exc})") from exc
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # manifest.json is not covered by the hashes: a malformed one must be refused
        # like any other bad bundle (not-ready / 422), never crash startup or a swap.
        raise BundleError(
            f"{bundle_dir}: manifest.json is malformed ({type(exc).__name__}: {exc})"
        ) from exc


def _load_bundle(bundle_dir: Path, variant: str, intra_op_threads: int) -> Bundle:
    manifest = read_manifest(bundle_dir)
    verify_files(bundle_dir, manifest)
    model_file = manifest.get("model_file", "model.onnx")
    if variant != "float":
        model_file = manifest.get("variants", {}).get(variant)
        if not model_file:
            raise BundleError(f"{bundle_dir}: no {variant!r} variant in this bundle")
    for needed in (model_file, manifest.get("tokenizer_file", "tokenizer.json")):
        if needed not in manifest["files"]:
            raise BundleError(f"{bundle_dir}: {needed} is not covered by the manifest's hashes")

    spec = manifest["input"]
    encoder = TextEncoder.from_file(
        bundle_dir / manifest.get("tokenizer_file", "tokenizer.json"),
        max_length=int(spec["max_length"]),
        truncation=spec["truncation"],
    )
    graph, weights = _graph_and_weights(bundle_dir / model_file)
    session = _open_session(bundle_dir / model_file, intra_op_threads, weights)
    grouped = _grouped_runner(graph, session, weights, intra_op_threads)
    del graph  # (its large tensors were moved into ``weights``)
    input_name = spec.get("name", "input_ids")
    bundle = Bundle(bundle_dir, manifest, encoder, session, input_name, variant, grouped, weights)
    _check_served_fields(bundle)
    if variant == "float":  # reference scores are the float model's
        self_check(bundle)
    log.info("model bundle loaded", extra={"model": bundle.name, "version": bundle.version})
    return bundle


def _check_served_fields(bundle: Bundle) -> None:
    """What the API reports for every request must be well-formed before serving."""
    if not isinstance(bundle.name, str) or not isinstance(bundle.version, str):
        raise BundleError(f"{bundle.path}: manifest name and version must be strings")
    if bundle.labels != ["negative", "positive"]:
        raise BundleError(
            f"{bundle.path}: labels {bundle.labels!r} != ['negative', 'positive'] (the API's labels)"
        )
    if not 0.0 <= bundle.threshold <= 1.0:
        raise BundleError(f"{bundle.path}: threshold {bundle.threshold} is not in [0, 1]")
    bundle.summary()  # every field /model reports is present


def _session_options(intra_op_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def _open_session(
    path: Path, intra_op_threads: int, weights: dict[str, ort.OrtValue]
) -> ort.InferenceSession:
    options = _session_options(intra_op_threads)
    for name, value in weights.items():  # the one copy the grouped sessions read too
        options.add_initializer(name, value)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise BundleError(f"{path}: onnxruntime cannot load it ({exc})") from exc


def _graph_and_weights(path: Path) -> tuple[onnx.ModelProto | None, dict[str, ort.OrtValue]]:
    """The graph (to copy for grouped calls) and its large weights (``shared_weights``).

    (None, {}) if onnx cannot read the graph or its large tensors cannot be held outside
    onnxruntime (bfloat16): the sessions then keep their own copies and run one group per
    call, with the same scores.
    """
    try:
        graph = onnx.load(str(path))
        return graph, shared_weights(graph)
    except Exception as exc:  # onnxruntime will say what is wrong with the file, if anything
        log.warning("one onnxruntime call per group for %s (%s)", path.name, exc)
        return None, {}


def _grouped_runner(
    graph: onnx.ModelProto | None,
    session: ort.InferenceSession,
    weights: dict[str, ort.OrtValue],
    intra_op_threads: int,
) -> GroupedRunner | None:
    """Sessions that run several groups per call; None (one call per group) if the graph
    cannot be replicated: scores are the same either way, only speed differs."""
    if graph is None:
        return None
    try:
        return GroupedRunner(graph, session, weights, lambda: _session_options(intra_op_threads))
    except Exception as exc:  # an unusual graph (subgraphs, several inputs): run it plainly
        log.warning("one onnxruntime call per group (%s)", exc)
        return None


def self_check(bundle: Bundle) -> None:
    """Score the manifest's reference texts alone and together; compare with training."""
    refs = bundle.manifest.get("reference") or []
    if not refs:
        raise BundleError(f"{bundle.path}: manifest has no reference texts for the self-check")
    texts = [r["text"] for r in refs]
    expected = np.array([r["score"] for r in refs], dtype=np.float64)
    together = bundle.score_texts(texts)
    alone = np.array([bundle.score_texts([t])[0] for t in texts])
    problems = []
    for i, (text, want) in enumerate(zip(texts, expected, strict=True)):
        for how, got in (("batched", together[i]), ("alone", alone[i])):
            if abs(float(got) - want) > SELF_CHECK_TOLERANCE:
                problems.append(f"reference {i} ({text[:40]!r}) {how}: {got:.7f} != {want:.7f}")
    if problems:
        raise BundleError(f"{bundle.path}: self-check failed: " + "; ".join(problems))
