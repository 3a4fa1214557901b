"""Bundle files: hashes, the integrity check, and finding versions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sentiment_core.bundle import (
    bundle_versions,
    file_entries,
    find_latest_bundle,
    sha256_file,
    verify_files,
)
from sentiment_core.manifest import BundleError, read_manifest


def test_sha256_file_is_the_standard_digest(tmp_path):
    data = b"x" * (3 << 20)  # more than one read
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_file_entries_cover_every_file_but_the_manifest_and_logs(tmp_path):
    for name in ("model.onnx", "tokenizer.json", "manifest.json", "train.log"):
        (tmp_path / name).write_text(name)
    entries = file_entries(tmp_path)
    assert set(entries) == {"model.onnx", "tokenizer.json"}
    assert entries["model.onnx"].bytes == len("model.onnx")


def test_the_committed_bundle_verifies_and_a_changed_byte_is_named(bundle_dir, tmp_path):
    manifest = read_manifest(bundle_dir)
    verify_files(bundle_dir, manifest)
    for name in manifest.files:
        (tmp_path / name).write_bytes((bundle_dir / name).read_bytes())
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "curves.png").unlink()
    with pytest.raises(BundleError) as info:
        verify_files(tmp_path, manifest)
    assert "tokenizer.json: sha256" in str(info.value) and "curves.png: missing" in str(info.value)


def test_versions_skip_partial_and_incomplete_directories(tmp_path):
    base = tmp_path / "m"
    for version in ("2024", "2026", "2025", "2027.partial", "2028"):
        (base / version).mkdir(parents=True)
    for version in ("2024", "2026", "2025", "2027.partial"):
        (base / version / "manifest.json").write_text("{}")
    assert [p.name for p in bundle_versions(tmp_path, "m")] == ["2024", "2025", "2026"]
    assert find_latest_bundle(tmp_path, "m").name == "2026"
    with pytest.raises(BundleError, match="no model bundle"):
        find_latest_bundle(tmp_path, "other")


def test_promote_writes_the_pointer_and_refuses_what_should_not_be_served(bundle_dir, tmp_path):
    import json
    import shutil

    from sentiment_core.bundle import PROMOTED_FILE, promote, promoted_bundle, promoted_models

    target = tmp_path / "sentiment-lstm" / "v1"
    shutil.copytree(bundle_dir, target)
    with pytest.raises(BundleError, match="no promoted version of model 'sentiment-lstm'"):
        promoted_bundle(tmp_path, "sentiment-lstm")
    assert promoted_models(tmp_path) == []
    promote(tmp_path, "sentiment-lstm", "v1")
    assert (tmp_path / "sentiment-lstm" / PROMOTED_FILE).read_text() == "v1\n"
    assert promoted_bundle(tmp_path, "sentiment-lstm") == target
    assert promoted_models(tmp_path) == ["sentiment-lstm"]

    smoke = tmp_path / "sentiment-lstm" / "smoke"
    shutil.copytree(bundle_dir, smoke)
    manifest = json.loads((smoke / "manifest.json").read_text())
    manifest["hyperparameters"]["limit"] = 400
    (smoke / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="smoke run"):
        promote(tmp_path, "sentiment-lstm", "smoke")
    assert promoted_bundle(tmp_path, "sentiment-lstm") == target  # unchanged
    promote(tmp_path, "sentiment-lstm", "smoke", force=True)
    assert promoted_bundle(tmp_path, "sentiment-lstm") == smoke
    with pytest.raises(BundleError, match="names model 'sentiment-lstm', not 'other'"):
        (tmp_path / "other").mkdir()
        shutil.copytree(bundle_dir, tmp_path / "other" / "v1")
        promote(tmp_path, "other", "v1")
    (tmp_path / "sentiment-lstm" / PROMOTED_FILE).write_text("gone\n")
    with pytest.raises(BundleError, match="'gone'"):
        promoted_bundle(tmp_path, "sentiment-lstm")


def test_the_promote_command_lists_and_promotes(bundle_dir, tmp_path, capsys):
    import shutil

    from sentiment_core.promote import main

    shutil.copytree(bundle_dir, tmp_path / "sentiment-lstm" / "v1")
    shutil.copytree(bundle_dir, tmp_path / "sentiment-lstm" / "v2")
    root = ["--models-root", str(tmp_path)]
    assert main(["sentiment-lstm", "v2", *root]) == 0
    assert main(["sentiment-lstm", *root]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == ["  v1", "* v2"]
    assert main(["sentiment-lstm", "v9", *root]) == 2
    assert "'sentiment-lstm' has no version 'v9' (its versions: v1, v2)" in capsys.readouterr().err
    (tmp_path / "sentiment-lstm" / "empty").mkdir()  # a folder that is not a bundle
    assert main(["sentiment-lstm", "empty", *root]) == 2
    assert "manifest.json missing" in capsys.readouterr().err
    # A shell's completion adds a slash; a path to the folder works as well.
    assert main(["sentiment-lstm", "v1/", *root]) == 0
    assert (tmp_path / "sentiment-lstm" / "PROMOTED").read_text() == "v1\n"
    assert main(["sentiment-lstm", str(tmp_path / "sentiment-lstm" / "v2") + "/", *root]) == 0
    assert main(["sentiment-lstm", *root]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == ["  v1", "* v2"]
    for wrong in ("../other/v1", ".", "", str(tmp_path / "v1")):
        assert main(["sentiment-lstm", wrong, *root]) == 2
        assert "is not a version" in capsys.readouterr().err
    assert (tmp_path / "sentiment-lstm" / "PROMOTED").read_text() == "v2\n"  # unchanged


def test_the_promote_command_lists_the_projects_models_from_any_directory(
    tmp_path, capsys, monkeypatch
):
    """Its default root is the one sentiment-serve reads, not ./models of the shell."""
    from sentiment_core.promote import main

    monkeypatch.chdir(tmp_path)
    assert main(["sentiment-lstm"]) == 0
    assert "* n2" in capsys.readouterr().out.splitlines()


def test_the_committed_models_are_promoted():
    from sentiment_core.bundle import promoted_bundle, promoted_models

    root = Path(__file__).resolve().parents[2] / "models"
    names = promoted_models(root)
    assert "sentiment-lstm" in names
    for name in names:
        assert (promoted_bundle(root, name) / "manifest.json").is_file()
