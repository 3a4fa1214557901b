"""The typed manifest: old bundles read, new ones round-trip, bad ones name the field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sentiment_core.manifest import (
    FORMAT_VERSION,
    ManifestError,
    parse_manifest,
    read_manifest,
)


@pytest.fixture
def raw(manifest: dict) -> dict:
    """The committed bundle's manifest as JSON (a fresh copy per test)."""
    return json.loads(json.dumps(manifest))


def three_class(raw: dict) -> dict:
    raw = {**raw, "format_version": FORMAT_VERSION, "labels": ["negative", "neutral", "positive"]}
    raw.pop("threshold", None)
    raw["decision"] = {"rule": "argmax"}
    raw["output"] = {"name": "probabilities", "kind": "softmax"}
    raw["reference"] = [{"text": "fine", "probabilities": [0.1, 0.7, 0.2]}]
    return raw


# The first release's manifest (bundle 20261122-032328, now in the git history): format 1,
# a top-level threshold and a score per reference text.
FORMAT_1 = Path(__file__).with_name("format1_manifest.json")


def test_a_format_1_manifest_reads_as_binary(tmp_path):
    raw = json.loads(FORMAT_1.read_text())
    shutil.copy(FORMAT_1, tmp_path / "manifest.json")
    m = read_manifest(tmp_path)
    assert m.format_version == 1 and m.labels == ["negative", "positive"]
    assert m.decision.rule == "threshold" and m.decision.threshold == raw["threshold"]
    assert m.output.kind == "sigmoid" and m.output_width == 1
    assert [r.outputs() for r in m.reference] == [[r["score"]] for r in raw["reference"]]
    assert m.files["model.onnx"].sha256 == raw["files"]["model.onnx"]["sha256"]
    raw["threshold"] = 1.5
    with pytest.raises(ManifestError, match=r"field 'decision\.threshold'"):
        parse_manifest(raw)


def test_a_written_manifest_reads_back_equal(raw):
    m = parse_manifest(raw)
    again = parse_manifest(json.loads(m.to_json()))
    assert again == m
    assert "decision" in json.loads(m.to_json())  # written in format 2's terms


def test_binary_probabilities_scores_and_labels(raw):
    m = parse_manifest(raw)
    outputs = np.array([[0.2], [0.5], [0.9]])
    np.testing.assert_allclose(m.probabilities(outputs), [[0.8, 0.2], [0.5, 0.5], [0.1, 0.9]])
    assert m.scores(outputs).tolist() == pytest.approx([0.2, 0.5, 0.9])
    assert m.predicted(outputs).tolist() == [0, 1, 1]  # score >= threshold is positive


def test_n_class_probabilities_scores_and_labels(raw):
    m = parse_manifest(three_class(raw))
    assert m.output_width == 3
    outputs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    np.testing.assert_allclose(m.probabilities(outputs), outputs)
    assert m.predicted(outputs).tolist() == [0, 2]
    assert m.scores(outputs).tolist() == pytest.approx([-0.6, 0.5])  # P(pos) - P(neg)


BAD = {
    "no labels": (lambda m: m.pop("labels"), "field 'labels': Field required"),
    "one label": (lambda m: m.update(labels=["x"]), "field 'labels'"),
    "duplicate labels": (lambda m: m.update(labels=["a", "a"]), "distinct"),
    "max_length zero": (lambda m: m["input"].update(max_length=0), "field 'input.max_length'"),
    "truncation": (lambda m: m["input"].update(truncation="middle"), "'middle'"),
    "threshold above 1": (lambda m: m["decision"].update(threshold=1.5), "'decision.threshold'"),
    "bad hash": (lambda m: m["files"]["model.onnx"].update(sha256="xyz"), "files.model.onnx"),
    "path in a file name": (
        lambda m: m["files"].update({"../x": {"sha256": "0" * 64}}),
        "must not contain paths",
    ),
    "model file not hashed": (lambda m: m["files"].pop("model.onnx"), "model.onnx is not covered"),
    "sigmoid with three labels": (lambda m: m.update(labels=["a", "b", "c"]), "exactly two"),
    "reference without score": (lambda m: m["reference"][0].pop("score"), "reference[0]"),
    "future format": (lambda m: m.update(format_version=99), "field 'format_version'"),
    "name with a slash": (lambda m: m.update(name="a/b"), "field 'name'"),
}


@pytest.mark.parametrize("edit, says", BAD.values(), ids=BAD.keys())
def test_a_malformed_manifest_is_one_clear_error_naming_the_field(raw, edit, says):
    edit(raw)
    with pytest.raises(ManifestError, match="malformed") as info:
        parse_manifest(raw)
    assert says in str(info.value)


def test_softmax_needs_the_argmax_rule(raw):
    bad = three_class(raw)
    bad["decision"] = {"rule": "threshold", "threshold": 0.5}
    with pytest.raises(ManifestError, match="argmax"):
        parse_manifest(bad)


def test_missing_or_broken_manifest_file(bundle_dir, tmp_path):
    with pytest.raises(ManifestError, match=r"manifest\.json missing"):
        read_manifest(tmp_path)
    shutil.copy(bundle_dir / "manifest.json", tmp_path / "manifest.json")
    read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"name": ')
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("[" * 100_000)  # deeper than json can recurse
    with pytest.raises(ManifestError, match=r"not valid JSON \(nested too deeply\)"):
        read_manifest(tmp_path)
