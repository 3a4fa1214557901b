"""The bundle manifest (``manifest.json``), typed: what a bundle promises whoever serves it.

Training writes it, the service reads it; both go through ``Manifest``. Format 1 (the
first binary bundles: a top-level ``threshold``) still reads; format 2 states the
decision rule and the output's kind, so a bundle may have any number of labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
MANIFEST_FILE = "manifest.json"
# Names and versions become directory names and URL path segments.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class BundleError(Exception):
    """A model bundle is missing, malformed, tampered with, or fails its self-check."""


class ManifestError(BundleError):
    """``manifest.json`` is missing, not JSON, or does not match ``Manifest``."""


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class InputSpec(_Part):
    name: str = "input_ids"
    dtype: Literal["int32"] = "int32"
    max_length: int = Field(ge=1)
    truncation: Literal["head", "tail", "head+tail"]
    padding: Literal["post"] = "post"
    pad_id: Literal[0] = 0
    unk_id: Literal[1] = 1
    vocab_size: int | None = Field(None, ge=2)


class OutputSpec(_Part):
    name: str = "score"
    # sigmoid: one column, P(labels[1]); softmax: one column per label, in label order.
    kind: Literal["sigmoid", "softmax"] = "sigmoid"
    meaning: str | None = None


class Decision(_Part):
    """How a label is chosen from the output: ``threshold`` (binary) or ``argmax``."""

    rule: Literal["threshold", "argmax"]
    threshold: float | None = Field(None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def threshold_given(self) -> Decision:
        if (self.rule == "threshold") != (self.threshold is not None):
            raise ValueError("'threshold' is required with rule 'threshold' and only then")
        return self


class FileEntry(_Part):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int | None = Field(None, ge=0)


class Reference(_Part):
    """A text and the model's output on it at training time (the load-time self-check)."""

    text: str
    score: float | None = None  # sigmoid bundles
    probabilities: list[float] | None = None  # softmax bundles

    def outputs(self) -> list[float]:
        """The model's output row for this text."""
        return [self.score] if self.score is not None else list(self.probabilities or [])


class Manifest(_Part):
    format_version: int
    name: str = Field(pattern=NAME_PATTERN)
    version: str = Field(pattern=NAME_PATTERN)
    created: str | None = None
    git_commit: str | None = None
    libraries: dict[str, str] = {}
    hyperparameters: dict[str, Any] = {}
    model_file: str = "model.onnx"
    tokenizer_file: str = "tokenizer.json"
    variants: dict[str, str] = {}
    input: InputSpec
    output: OutputSpec = OutputSpec()
    labels: list[str] = Field(min_length=2)
    decision: Decision
    metrics: dict[str, Any] = {}
    reference: list[Reference] = Field(min_length=1)
    files: dict[str, FileEntry] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def format_1(cls, data: Any) -> Any:
        """Format 1 had a top-level ``threshold`` and no ``decision``."""
        if isinstance(data, dict) and "decision" not in data and "threshold" in data:
            data = {**data, "decision": {"rule": "threshold", "threshold": data["threshold"]}}
        return data

    @field_validator("format_version")
    @classmethod
    def readable(cls, value: int) -> int:
        if value not in READABLE_FORMATS:
            raise ValueError(
                f"format {value} is not readable here (reads {list(READABLE_FORMATS)})"
            )
        return value

    @field_validator("labels")
    @classmethod
    def distinct_labels(cls, labels: list[str]) -> list[str]:
        if len(set(labels)) != len(labels) or not all(labels):
            raise ValueError("labels must be distinct, non-empty strings")
        return labels

    @field_validator("files")
    @classmethod
    def plain_file_names(cls, files: dict[str, FileEntry]) -> dict[str, FileEntry]:
        for name in files:
            if Path(name).name != name or name in ("", ".", ".."):
                raise ValueError(f"{name!r}: file names must not contain paths")
        return files

    @model_validator(mode="after")
    def consistent(self) -> Manifest:
        binary = self.output.kind == "sigmoid"
        if binary and (len(self.labels) != 2 or self.decision.rule != "threshold"):
            raise ValueError("a sigmoid output needs exactly two labels and the threshold rule")
        if not binary and self.decision.rule != "argmax":
            raise ValueError("a softmax output needs the argmax rule")
        needs = "score" if binary else "probabilities"
        for i, ref in enumerate(self.reference):
            if len(ref.outputs()) != self.output_width:
                raise ValueError(f"reference[{i}] needs '{needs}' ({self.output_width} values)")
        for needed in (self.model_file, self.tokenizer_file, *self.variants.values()):
            if needed not in self.files:
                raise ValueError(f"{needed} is not covered by the manifest's hashes ('files')")
        return self

    @property
    def output_width(self) -> int:
        """Columns of the model's output: 1 (sigmoid) or one per label (softmax)."""
        return 1 if self.output.kind == "sigmoid" else len(self.labels)

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """One probability per label for each output row (sigmoid: [1 - p, p])."""
        outputs = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
        if self.output.kind == "sigmoid":
            return np.concatenate([1.0 - outputs[:, :1], outputs[:, :1]], axis=1)
        return outputs

    def predicted(self, outputs: np.ndarray) -> np.ndarray:
        """The index of each row's label, by the decision rule."""
        outputs = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
        if self.decision.rule == "threshold":
            return (outputs[:, 0] >= self.decision.threshold).astype(int)
        return np.argmax(outputs, axis=1)

    def scores(self, outputs: np.ndarray) -> np.ndarray:
        """The API's ``score``: P(labels[1]) for sigmoid bundles; for softmax bundles with
        labels ``negative`` and ``positive``, P(positive) - P(negative) in [-1, 1]; for
        other softmax bundles, the probability of the predicted label."""
        probabilities = self.probabilities(outputs)
        if self.output.kind == "sigmoid":
            return probabilities[:, 1]
        if (polar := self.polar_indices()) is None:
            return probabilities.max(axis=1)
        negative, positive = polar
        return probabilities[:, positive] - probabilities[:, negative]

    def polar_indices(self) -> tuple[int, int] | None:
        """Where the labels ``negative`` and ``positive`` are, if the bundle has both."""
        if "negative" in self.labels and "positive" in self.labels:
            return self.labels.index("negative"), self.labels.index("positive")
        return None

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True) + "\n"


def read_manifest(bundle_dir: Path) -> Manifest:
    """``bundle_dir``'s manifest, or ``ManifestError`` naming the first field that is wrong."""
    path = bundle_dir / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f"{path}: {MANIFEST_FILE} missing (is {bundle_dir} a model bundle?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from exc
    except RecursionError:  # json's decoder recurses: "[[[[..." deeper than the stack
        raise ManifestError(f"{path}: not valid JSON (nested too deeply)") from None
    return parse_manifest(data, str(path))


def parse_manifest(data: Any, where: str = MANIFEST_FILE) -> Manifest:
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"{where}: manifest is malformed: {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """The first error, naming its field (``input.max_length``) and the value found."""
    errors = exc.errors()
    first = errors[0]
    field = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] not in ("missing", "value_error") and not isinstance(first["input"], dict):
        found = repr(first["input"])
        message += f" (found {found[:60] + '…' if len(found) > 60 else found})"
    more = f"; and {len(errors) - 1} more problems" if len(errors) > 1 else ""
    return f"field '{field}': {message}{more}" if field else message + more
