"""Large Movie Review Dataset (Maas et al., 2011) loader.

Reads the official layout ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`` with
``aclImdb/{train,test}/urls_{pos,neg}.txt`` from the official ``aclImdb_v1.tar.gz``, any
.tar.gz with that layout, or an extracted directory. ``unsup/`` and ``*.feat`` files are
skipped. Each review keeps its rating and the IMDB movie id its URL names, so validation
can be split by movie.
"""

from __future__ import annotations

import collections
import os
import re
import tarfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from sentiment_core.bundle import sha256_file

OFFICIAL_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
OFFICIAL_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
DATA_ENV_VAR = "SENTIMENT_DATA"
# Relative to the project root: the shared copy beside the checkout.
DEFAULT_DATA_PATH = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "aclImdb_labeled.tar.gz"
)

SPLITS = ("train", "test")
T = TypeVar("T")
_REVIEW_RE = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_URLS_RE = re.compile(r"(?:^|/)aclImdb/(train|test)/urls_(pos|neg)\.txt$")
_MOVIE_RE = re.compile(r"/title/(tt\d+)/")


class DatasetError(RuntimeError):
    """The dataset is missing, unreadable, or not in the expected layout."""


@dataclass(frozen=True, slots=True)
class Review:
    split: str  # "train" or "test"
    review_id: int  # the <id> in <id>_<rating>.txt, unique within (split, polarity)
    rating: int  # 1-4 negative, 7-10 positive
    label: int  # 1 = positive
    text: str
    movie_id: str  # e.g. "tt0453418"; "" if the urls file lacks the line


def default_data_path() -> Path:
    return Path(os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_PATH).resolve()


def _iter_tar(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with tarfile.open(path, mode="r:*") as archive:
            for member in archive:
                if not member.isfile() or not (
                    _REVIEW_RE.search(member.name) or _URLS_RE.search(member.name)
                ):
                    continue  # unsup/, *.feat, README, imdb.vocab
                handle = archive.extractfile(member)
                if handle is not None:
                    yield member.name, handle.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        why = " ".join(str(exc).split())  # tarfile lists every method it tried, one per line
        raise DatasetError(
            f"{path}: not a readable .tar.gz archive of the IMDB dataset ({why})"
        ) from exc


def _iter_dir(path: Path) -> Iterator[tuple[str, bytes]]:
    root = path if path.name == "aclImdb" else path / "aclImdb"
    if not root.is_dir():
        raise DatasetError(
            f"{path}: expected a directory containing aclImdb/train and aclImdb/test"
        )
    for split in SPLITS:
        for polarity in ("pos", "neg"):
            urls = root / split / f"urls_{polarity}.txt"
            if urls.is_file():
                yield f"aclImdb/{split}/urls_{polarity}.txt", urls.read_bytes()
            folder = root / split / polarity
            if folder.is_dir():
                for file in folder.glob("*.txt"):
                    yield f"aclImdb/{split}/{polarity}/{file.name}", file.read_bytes()


def load_imdb(
    path: str | Path | None = None, splits: tuple[str, ...] = SPLITS
) -> dict[str, list[Review]]:
    """Load the labeled reviews, sorted by (polarity, id) within each split for determinism."""
    path = Path(path).resolve() if path else default_data_path()
    if not path.exists():
        raise DatasetError(
            f"{path}: dataset not found. Expected aclImdb_v1.tar.gz (or a .tar.gz / directory "
            f"with aclImdb/{{train,test}}/{{pos,neg}}/<id>_<rating>.txt). Pass --data PATH, set "
            f"{DATA_ENV_VAR}, or use --download."
        )
    files = _iter_dir(path) if path.is_dir() else _iter_tar(path)

    raw: dict[tuple[str, str, int], tuple[int, str]] = {}
    urls: dict[tuple[str, str], list[str]] = {}
    for name, data in files:
        if m := _REVIEW_RE.search(name):
            split, polarity, rid, rating = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
            if split in splits:
                raw[(split, polarity, rid)] = (rating, data.decode("utf-8", errors="replace"))
        elif m := _URLS_RE.search(name):
            urls[(m.group(1), m.group(2))] = data.decode("utf-8").splitlines()

    out: dict[str, list[Review]] = {s: [] for s in splits}
    for (split, polarity, rid), (rating, text) in sorted(raw.items()):
        lines = urls.get((split, polarity), [])
        movie = _MOVIE_RE.search(lines[rid]) if rid < len(lines) else None
        out[split].append(
            Review(
                split, rid, rating, int(polarity == "pos"), text, movie.group(1) if movie else ""
            )
        )
    for split in splits:
        if not out[split]:
            raise DatasetError(
                f"{path}: no reviews found for split {split!r} "
                f"(expected aclImdb/{split}/{{pos,neg}}/<id>_<rating>.txt)"
            )
    return out


def download_imdb(dest: str | Path, url: str = OFFICIAL_URL, sha256: str = OFFICIAL_SHA256) -> Path:
    """Fetch the official tarball and verify its SHA-256 (not run in CI: no network there)."""
    dest = Path(dest)
    if dest.exists() and sha256_file(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)
    digest = sha256_file(partial)
    if digest != sha256:
        partial.unlink(missing_ok=True)
        raise DatasetError(f"{url}: SHA-256 {digest} does not match the expected {sha256}")
    partial.replace(dest)
    return dest


def split_by_movie(
    reviews: list[Review], val_fraction: float, seed: int
) -> tuple[list[Review], list[Review]]:
    """Hold out whole movies: reviews of one movie are correlated, so a random split
    would leak and overstate accuracy (about 2 points on this data)."""
    return split_by_group(
        reviews, lambda r: r.movie_id or f"review-{r.review_id}-{r.label}", val_fraction, seed
    )


def split_by_group(
    items: list[T], group: Callable[[T], str], fraction: float, seed: int
) -> tuple[list[T], list[T]]:
    """Hold out whole groups (shuffled with ``seed``) until ``fraction`` of the items are out.

    Returns (kept, held out), each in the input order.
    """
    groups = sorted({group(item) for item in items})
    rng = np.random.default_rng(seed)
    rng.shuffle(groups)
    per_group = collections.Counter(group(item) for item in items)
    held_out: set[str] = set()
    target, count = fraction * len(items), 0
    for key in groups:
        if count >= target:
            break
        held_out.add(key)
        count += per_group[key]
    kept, out = [], []
    for item in items:
        (out if group(item) in held_out else kept).append(item)
    return kept, out


def length_bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, pool_batches: int = 50
) -> list[np.ndarray]:
    """Shuffle, then sort by length within pools of ``pool_batches`` batches.

    Batches of similar lengths waste little compute on padding (reviews run from 10 to
    2,500 tokens) while the pool keeps batches varied from step to step.
    """
    order = rng.permutation(len(lengths))
    batches = []
    pool = batch_size * pool_batches
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches
