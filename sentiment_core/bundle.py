"""Bundle files: hashing, integrity checks, the versions under a models root, and which
version of each model is promoted (served).

Layout: ``<models root>/<model name>/<version>/`` holds one bundle; the text file
``<models root>/<model name>/PROMOTED`` names the version that is served. Training never
changes what is served by itself: a version is promoted only by an explicit step
(``sentiment-train --promote``, ``sentiment-promote``, or editing the file).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sentiment_core.manifest import MANIFEST_FILE, BundleError, FileEntry, Manifest

PARTIAL_SUFFIX = ".partial"  # a training job still writing; never served
PROMOTED_FILE = "PROMOTED"


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


def promoted_models(models_root: Path) -> list[str]:
    """The model names under ``models_root`` that have a promoted version, sorted."""
    if not models_root.is_dir():
        return []
    return sorted(p.name for p in models_root.iterdir() if (p / PROMOTED_FILE).is_file())


def promoted_bundle(models_root: Path, name: str) -> Path:
    """The bundle directory that ``<models_root>/<name>/PROMOTED`` names."""
    pointer = models_root / name / PROMOTED_FILE
    if not pointer.is_file():
        available = ", ".join(p.name for p in bundle_versions(models_root, name)) or "none"
        raise BundleError(
            f"no promoted version of model {name!r}: {pointer} is missing (versions there: "
            f"{available}); promote one with `sentiment-promote {name} VERSION`"
        )
    version = pointer.read_text(encoding="utf-8").strip()
    bundle = models_root / name / version
    if not version or "/" in version or not (bundle / MANIFEST_FILE).is_file():
        raise BundleError(f"{pointer} names {version!r}, which is not a bundle in {bundle.parent}")
    return bundle


def version_name(models_root: Path, name: str, version: str) -> str:
    """The version directory's name from what a user typed: ``n2``, ``n2/`` (a shell's
    completion) or a path to it; anything outside ``<models_root>/<name>/`` is refused."""
    path = Path(version.strip())
    # A path must lead to a folder directly under the model's.
    if len(path.parts) > 1 and path.resolve().parent != (models_root / name).resolve():
        raise BundleError(f"{version!r} is not a version folder of {models_root / name}")
    if path.name in ("", ".", ".."):
        raise BundleError(
            f"{version!r} is not a version name (e.g. one of the folders in {models_root / name})"
        )
    return path.name


def refuse_smoke_run(bundle: Path, manifest: Manifest, force: bool, how: str) -> None:
    """A bundle trained with ``limit`` (a smoke run) is served only when asked by force."""
    limit = manifest.hyperparameters.get("limit") or 0
    if limit and not force:
        raise BundleError(f"{bundle} was trained on a {limit}-text sample (a smoke run); {how}")


def promote(models_root: Path, name: str, version: str, *, force: bool = False) -> Path:
    """Make ``version`` the served version of ``name`` (after checking it is a whole bundle).

    Smoke runs (trained with ``limit``) are refused unless ``force``: they are not models
    anyone should be served by accident.
    """
    from sentiment_core.manifest import read_manifest

    version = version_name(models_root, name, version)
    bundle = models_root / name / version
    manifest = read_manifest(bundle)
    verify_files(bundle, manifest)
    if manifest.name != name:
        raise BundleError(f"{bundle}: its manifest names model {manifest.name!r}, not {name!r}")
    refuse_smoke_run(bundle, manifest, force, "promote it anyway with --force")
    pointer = models_root / name / PROMOTED_FILE
    partial = pointer.with_suffix(".tmp")
    partial.write_text(version + "\n", encoding="utf-8")
    partial.replace(pointer)  # atomic: a reader sees the old version or the new one
    return bundle
