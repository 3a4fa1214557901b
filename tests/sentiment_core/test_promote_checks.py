"""Promotion refuses what the service could not load, and writes its pointer safely; the
pointer is read as leniently as is safe (a BOM) and fails as a ``BundleError``."""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from pathlib import Path

import pytest

from sentiment_core.bundle import (
    PROMOTED_FILE,
    onnx_problem,
    promote,
    promoted_bundle,
    promoted_models,
    sha256_file,
    unpromoted_models,
    write_pointer,
)
from sentiment_core.manifest import BundleError
from sentiment_core.promote import main
from tests.support.permissions import not_as_root


@pytest.fixture
def root(tmp_path, bundle_dir) -> Path:
    """A copy of the committed binary model as versions v1 (promoted) and v2."""
    for version in ("v1", "v2"):
        shutil.copytree(bundle_dir, tmp_path / "sentiment-lstm" / version)
    (tmp_path / "sentiment-lstm" / PROMOTED_FILE).write_text("v1\n")
    return tmp_path


def replace_and_rehash(bundle: Path, file: str, content: bytes) -> None:
    """Damage that hashes cannot catch: the manifest is updated to the new content."""
    (bundle / file).write_bytes(content)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][file] = {"sha256": sha256_file(bundle / file), "bytes": len(content)}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def pointer(root: Path) -> str:
    return (root / "sentiment-lstm" / PROMOTED_FILE).read_text()


UNLOADABLE = {
    "tokenizer.json without a model": ("tokenizer.json", b'{"version": "1.0"}', "unreadable"),
    "tokenizer.json not JSON": ("tokenizer.json", b'{"version": ', "unreadable"),
    "model.onnx cut short": ("model.onnx", None, "not a whole ONNX model (cut short"),
    "model.onnx not protobuf": ("model.onnx", b"not a model", "not a whole ONNX model"),
}


@pytest.mark.parametrize("file, content, says", UNLOADABLE.values(), ids=UNLOADABLE.keys())
def test_promote_refuses_a_bundle_the_service_cannot_load(root, capsys, file, content, says):
    bundle = root / "sentiment-lstm" / "v2"
    content = content or (bundle / file).read_bytes()[:100_000]
    replace_and_rehash(bundle, file, content)
    with pytest.raises(BundleError, match=f"{file}.*{says}".replace("(", r"\(")):
        promote(root, "sentiment-lstm", "v2")
    assert main(["sentiment-lstm", "v2", "--models-root", str(root)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and file in error
    assert pointer(root) == "v1\n"  # unchanged


def test_onnx_check_accepts_the_committed_models_and_any_cut(bundle_dir):
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    for model_file in (manifest["model_file"], *manifest.get("variants", {}).values()):
        data = (bundle_dir / model_file).read_bytes()
        assert onnx_problem(data) is None
        for cut in (0, 1, 7, 100, len(data) // 2, len(data) - 1):
            assert onnx_problem(data[:cut]) is not None, (model_file, cut)
    assert "not protobuf" in onnx_problem(b'{"graph": []}')


def test_concurrent_pointer_writes_never_fail_nor_tear(root):
    """Each writer has its own temporary file: none renames another's away."""
    target = root / "sentiment-lstm" / PROMOTED_FILE
    errors: list[BaseException] = []

    def write_many(version: str) -> None:
        try:
            for _ in range(200):
                write_pointer(target, version)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write_many, args=(f"v{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_text() in {f"v{i}\n" for i in range(8)}
    assert sorted(p.name for p in target.parent.iterdir()) == [PROMOTED_FILE, "v1", "v2"]


def test_the_pointer_is_readable_by_a_server_running_as_another_user(root):
    """The training container writes it as one user, the API reads it as another."""
    target = root / "sentiment-lstm" / PROMOTED_FILE
    old_mask = os.umask(0o077)  # even under a strict umask
    try:
        write_pointer(target, "n2")
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_failed_pointer_write_is_one_line_and_leaves_nothing_behind(root, capsys):
    target = root / "sentiment-lstm" / PROMOTED_FILE
    target.unlink()
    target.mkdir()  # os.replace cannot put a file there
    assert main(["sentiment-lstm", "v2", "--models-root", str(root)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"cannot write {target}" in error
    assert sorted(p.name for p in target.parent.iterdir()) == [PROMOTED_FILE, "v1", "v2"]


def test_a_bom_before_the_version_is_not_part_of_its_name(root):
    (root / "sentiment-lstm" / PROMOTED_FILE).write_bytes(b"\xef\xbb\xbfv2\r\n")
    assert promoted_bundle(root, "sentiment-lstm") == root / "sentiment-lstm" / "v2"


def test_a_pointer_that_is_not_text_is_a_bundle_error(root):
    (root / "sentiment-lstm" / PROMOTED_FILE).write_bytes(b"\xff\xfev2\n")
    with pytest.raises(BundleError, match="PROMOTED: cannot read the promoted version: not UTF-8"):
        promoted_bundle(root, "sentiment-lstm")


def test_folders_with_versions_but_no_pointer_are_found(root, bundle_dir):
    shutil.copytree(bundle_dir, root / "unpromoted" / "v1")
    (root / "empty").mkdir()
    (root / "pointer-is-a-folder" / PROMOTED_FILE).mkdir(parents=True)
    shutil.copytree(bundle_dir, root / "pointer-is-a-folder" / "v1")
    assert unpromoted_models(root) == ["pointer-is-a-folder", "unpromoted"]
    assert promoted_models(root) == ["sentiment-lstm"]


@not_as_root
def test_an_unreadable_model_folder_is_listed_so_that_its_load_says_why(root):
    (root / "lost+found").mkdir()
    for folder in ("sentiment-lstm", "lost+found"):
        (root / folder).chmod(0)
    try:
        assert promoted_models(root) == ["sentiment-lstm"]  # lost+found is no model name
        with pytest.raises(BundleError, match="Permission denied"):
            promoted_bundle(root, "sentiment-lstm")
    finally:
        for folder in ("sentiment-lstm", "lost+found"):
            (root / folder).chmod(0o755)


@not_as_root
def test_an_unreadable_models_root_is_a_bundle_error(root):
    root.chmod(0)
    try:
        with pytest.raises(BundleError, match=r"cannot list the models in .*Permission denied"):
            promoted_models(root)
    finally:
        root.chmod(0o755)


@not_as_root
@pytest.mark.parametrize("what", ["unreadable pointer, listing", "read-only folder, promoting"])
def test_permission_problems_in_the_command_are_one_line(root, capsys, what):
    listing = what.startswith("unreadable")
    target = root / "sentiment-lstm" / (PROMOTED_FILE if listing else "")
    target.chmod(0 if listing else 0o555)
    try:
        args = ["sentiment-lstm"] if listing else ["sentiment-lstm", "v2"]
        assert main([*args, "--models-root", str(root)]) == 2
    finally:
        target.chmod(0o644 if listing else 0o755)
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Permission denied" in error
    assert pointer(root) == "v1\n"
