"""Bundle files: hashing, integrity checks, and finding the versions under a models root."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sentiment_core.manifest import MANIFEST_FILE, BundleError, FileEntry, Manifest

PARTIAL_SUFFIX = ".partial"  # a training job still writing; never served


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def file_entries(bundle_dir: Path, skip_suffixes: tuple[str, ...] = (".log",)) -> dict:
    """``files`` for a manifest: the hash and size of every file beside it."""
    return {
        p.name: FileEntry(sha256=sha256_file(p), bytes=p.stat().st_size)
        for p in sorted(bundle_dir.iterdir())
        if p.is_file() and p.name != MANIFEST_FILE and p.suffix not in skip_suffixes
    }


def verify_files(bundle_dir: Path, manifest: Manifest) -> None:
    """``BundleError`` naming every file that is missing or whose hash differs."""
    problems = []
    for name, entry in manifest.files.items():
        file = bundle_dir / name
        if not file.is_file():
            problems.append(f"{name}: missing")
        elif (actual := sha256_file(file)) != entry.sha256:
            problems.append(f"{name}: sha256 {actual} != manifest {entry.sha256}")
    if problems:
        raise BundleError(f"{bundle_dir}: integrity check failed: " + "; ".join(problems))


def bundle_versions(models_root: Path, name: str) -> list[Path]:
    """The complete version directories of model ``name``, sorted by name."""
    base = models_root / name
    candidates = base.iterdir() if base.is_dir() else []
    return sorted(
        p
        for p in candidates
        if p.is_dir() and not p.name.endswith(PARTIAL_SUFFIX) and (p / MANIFEST_FILE).is_file()
    )


def find_latest_bundle(models_root: Path, name: str) -> Path:
    """The last version directory of ``name`` in name order (timestamps sort in time)."""
    versions = bundle_versions(models_root, name)
    if not versions:
        base = models_root / name
        raise BundleError(
            f"no model bundle under {base} (expected {base}/<version>/{MANIFEST_FILE})"
        )
    return versions[-1]
