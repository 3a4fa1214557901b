"""Pretrained encoders on disk, one folder per hash of everything that made them.

    <cache>/<key>/weights.npz   the layers' arrays, "<layer>/<index>"
    <cache>/<key>/entry.json    what the key was made from, the arrays' SHA-256 and shapes,
                                and the pretraining report (perplexity, seconds)

An entry is used only when its record names the same key, the file's hash matches the
record, and every array has the shape the model expects; anything else (a missing, truncated
or edited file, another shape) is reported and recomputed, never trusted. Entries are
written to a temporary folder and renamed into place, so a killed job leaves none half made.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from sentiment_core.bundle import sha256_file

FORMAT = 1  # bump when the layout or the meaning of an entry changes
Weights = dict[str, list[np.ndarray]]


def texts_digest(texts: Iterable[str]) -> str:
    """SHA-256 over the texts in order (each length-prefixed, so boundaries count)."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def array_digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def cache_key(inputs: dict) -> str:
    """The key of a pretraining run: SHA-256 of its inputs as canonical JSON."""
    text = json.dumps({"format": FORMAT, **inputs}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load(folder: Path, key: str, shapes: dict[str, list[tuple]]) -> tuple[Weights, dict] | None:
    """The entry's weights and report, or None when it is absent or cannot be trusted
    (raises ``CacheEntryError`` with the reason for a present but bad entry)."""
    entry = folder / key
    if not entry.exists():
        return None
    try:
        record = json.loads((entry / "entry.json").read_text())
        if record.get("key") != key or record.get("format") != FORMAT:
            raise CacheEntryError("its record names another key or format")
        if sha256_file(entry / "weights.npz") != record.get("sha256"):
            raise CacheEntryError("weights.npz does not match its recorded SHA-256")
        with np.load(entry / "weights.npz", allow_pickle=False) as stored:
            weights = {
                layer: [stored[f"{layer}/{i}"] for i in range(len(expected))]
                for layer, expected in shapes.items()
            }
    except CacheEntryError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CacheEntryError(f"unreadable ({type(exc).__name__}: {exc})") from None
    for layer, expected in shapes.items():
        found = [tuple(a.shape) for a in weights[layer]]
        if found != [tuple(s) for s in expected]:
            raise CacheEntryError(f"{layer} has shapes {found}, expected {expected}")
    return weights, record.get("report", {})


class CacheEntryError(RuntimeError):
    """A cache entry exists but cannot be used; the job recomputes it."""


def save(folder: Path, key: str, weights: Weights, inputs: dict, report: dict) -> Path:
    """Write the entry atomically (replacing a bad one); returns its folder."""
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder))
    staging.chmod(0o755)  # mkdtemp makes it private; entries are shared like the models
    try:
        arrays = {
            f"{layer}/{i}": a for layer, values in weights.items() for i, a in enumerate(values)
        }
        np.savez(staging / "weights.npz", **arrays)
        record = {
            "format": FORMAT,
            "key": key,
            "inputs": inputs,
            "sha256": sha256_file(staging / "weights.npz"),
            "shapes": {layer: [list(a.shape) for a in values] for layer, values in weights.items()},
            "report": report,
        }
        (staging / "entry.json").write_text(json.dumps(record, indent=2) + "\n")
        target = folder / key
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        return target
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
