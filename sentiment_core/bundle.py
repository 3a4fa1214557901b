"""Bundle files: hashing, integrity checks, the versions under a models root, and which
version of each model is promoted (served).

Layout: ``<models root>/<model name>/<version>/`` holds one bundle; the text file
``<models root>/<model name>/PROMOTED`` names the version that is served. Training never
changes what is served by itself: a version is promoted only by an explicit step
(``sentiment-train --promote``, ``sentiment-promote``, or editing the file).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sentiment_core.manifest import (
    MANIFEST_FILE,
    NAME_PATTERN,
    BundleError,
    FileEntry,
    Manifest,
    read_manifest,
)

if TYPE_CHECKING:
    from tokenizers import Tokenizer

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
    """The model names under ``models_root`` that have a promoted version, sorted; a model
    folder that cannot be read is listed too, so that its load says why it is not served."""
    try:
        if not models_root.is_dir():
            return []
        folders = sorted(models_root.iterdir())
    except OSError as exc:
        raise BundleError(f"cannot list the models in {models_root}: {_why(exc)}") from exc
    return [p.name for p in folders if _names_a_version(p)]


def _names_a_version(folder: Path) -> bool:
    try:
        return (folder / PROMOTED_FILE).is_file()
    except OSError:  # unreadable: a model only if named like one (not lost+found)
        return re.fullmatch(NAME_PATTERN, folder.name) is not None


def unpromoted_models(models_root: Path) -> list[str]:
    """Model folders with versions but no ``PROMOTED`` file (not served; worth a warning)."""
    try:
        folders = sorted(models_root.iterdir())
    except OSError:  # unreadable: the served models report it themselves
        return []
    return [p.name for p in folders if _unpromoted(models_root, p)]


def _unpromoted(models_root: Path, folder: Path) -> bool:
    try:
        return not (folder / PROMOTED_FILE).is_file() and bool(
            bundle_versions(models_root, folder.name)
        )
    except OSError:
        return False


def promoted_bundle(models_root: Path, name: str) -> Path:
    """The bundle directory that ``<models_root>/<name>/PROMOTED`` names."""
    pointer = models_root / name / PROMOTED_FILE
    try:
        return _promoted_bundle(models_root, name, pointer)
    except (OSError, UnicodeError) as exc:
        raise BundleError(f"{pointer}: cannot read the promoted version: {_why(exc)}") from exc


def _promoted_bundle(models_root: Path, name: str, pointer: Path) -> Path:
    if not pointer.is_file():
        available = ", ".join(p.name for p in bundle_versions(models_root, name)) or "none"
        raise BundleError(
            f"no promoted version of model {name!r}: {pointer} is missing or not a file "
            f"(versions there: {available}); promote one with `sentiment-promote {name} VERSION`"
        )
    # utf-8-sig: a BOM left by a Windows editor is not part of the version's name
    version = pointer.read_text(encoding="utf-8-sig").strip()
    bundle = models_root / name / version
    if not version or "/" in version or not (bundle / MANIFEST_FILE).is_file():
        raise BundleError(f"{pointer} names {version!r}, which is not a bundle in {bundle.parent}")
    return bundle


def _why(exc: Exception) -> str:
    """An OS or decoding error in a few words (its path is named by the caller)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    return getattr(exc, "strerror", None) or str(exc)


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


def existing_version(models_root: Path, name: str, version: str) -> Path:
    """``<models_root>/<name>/<version>``, or an error listing the versions there are."""
    bundle = models_root / name / version
    try:
        if bundle.is_dir():
            return bundle
    except OSError as exc:  # a name too long, a folder we may not read
        raise BundleError(f"{str(bundle)[:200]}: {_why(exc)}") from None
    there = ", ".join(p.name for p in bundle_versions(models_root, name)) or "none"
    raise BundleError(f"model {name!r} has no version {version[:100]!r} (its versions: {there})")


def refuse_smoke_run(bundle: Path, manifest: Manifest, force: bool, how: str) -> None:
    """A bundle trained with ``limit`` (a smoke run) is served only when asked by force."""
    limit = manifest.hyperparameters.get("limit") or 0
    if limit and not force:
        raise BundleError(f"{bundle} was trained on a {limit}-text sample (a smoke run); {how}")


def promote(models_root: Path, name: str, version: str, *, force: bool = False) -> Path:
    """Make ``version`` the served version of ``name`` (after checking it is a whole bundle
    that a server can open).

    Smoke runs (trained with ``limit``) are refused unless ``force``: they are not models
    anyone should be served by accident.
    """
    bundle = existing_version(models_root, name, version_name(models_root, name, version))
    manifest = read_manifest(bundle)
    verify_files(bundle, manifest)
    if manifest.name != name:
        raise BundleError(f"{bundle}: its manifest names model {manifest.name!r}, not {name!r}")
    refuse_smoke_run(bundle, manifest, force, "promote it anyway with --force")
    check_loadable(bundle, manifest)
    write_pointer(models_root / name / PROMOTED_FILE, bundle.name)
    return bundle


def write_pointer(pointer: Path, version: str) -> None:
    """Replace ``pointer`` atomically and durably: a reader, a crash or a concurrent
    promoter sees the old version or the new one, never a torn or missing file."""
    try:
        _replace_durably(pointer, (version + "\n").encode("utf-8"))
    except OSError as exc:  # a read-only models folder, a full disk
        raise BundleError(f"cannot write {pointer}: {_why(exc)}") from exc


def _replace_durably(path: Path, data: bytes) -> None:
    # A temporary name of its own: concurrent writers never rename each other's file.
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp's 0600 would hide the pointer from a server running as another user
        # (the training and serving containers do); a version name is no secret.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def check_loadable(bundle: Path, manifest: Manifest) -> None:
    """What hashes cannot tell: the tokenizer parses, and each model file is a whole ONNX
    protobuf (a runtime check without onnxruntime, which this package must not import)."""
    read_bundle_tokenizer(bundle, manifest)
    for model_file in (manifest.model_file, *manifest.variants.values()):
        if problem := onnx_problem((bundle / model_file).read_bytes()):
            raise BundleError(f"{bundle}: {model_file} is not a whole ONNX model ({problem})")


def read_bundle_tokenizer(bundle: Path, manifest: Manifest) -> Tokenizer:
    """The bundle's tokenizer; ``BundleError`` if it does not parse (hashes only say that
    it is the file training wrote, which a hand edit re-hashed may not be)."""
    from sentiment_core.tokenizer import read_tokenizer

    try:
        return read_tokenizer(bundle / manifest.tokenizer_file)
    except Exception as exc:  # json, OS and tokenizers errors (tokenizers raises Exception)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BundleError(f"{bundle}: {manifest.tokenizer_file} unreadable: {reason}") from exc


# ModelProto's graph and opset_import: an exported model always has both.
_ONNX_REQUIRED_FIELDS = {7: "graph", 8: "opset_import"}


def onnx_problem(data: bytes) -> str | None:
    """Why ``data`` is not a serialized ONNX ModelProto (cut short, not protobuf, no
    graph), or None. Reads the top level only: a cut inside the graph overruns it."""
    fields, i = set(), 0
    try:
        while i < len(data):
            key, i = _varint(data, i)
            i = _skip_value(data, i, key & 7)
            fields.add(key >> 3)
    except ValueError as exc:
        return str(exc)
    missing = [name for number, name in _ONNX_REQUIRED_FIELDS.items() if number not in fields]
    return f"no {', '.join(missing)}" if missing else None


def _skip_value(data: bytes, i: int, wire_type: int) -> int:
    if wire_type == 0:
        return _varint(data, i)[1]
    if wire_type == 2:
        length, i = _varint(data, i)
        i += length
    elif wire_type in (1, 5):
        i += 8 if wire_type == 1 else 4
    else:
        raise ValueError(f"not protobuf: wire type {wire_type} at byte {i}")
    if i > len(data):
        raise ValueError("cut short: a field runs past the end of the file")
    return i


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while i < len(data) and shift < 64:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not byte & 0x80:
            return value, i
    raise ValueError("cut short: the file ends inside a number")
