"""IMDB loader on tiny archives made by the test, in the official layout."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from sentiment_core.bundle import sha256_file
from training.data import (
    OFFICIAL_SHA256,
    OFFICIAL_URL,
    DatasetError,
    download_imdb,
    length_bucketed_batches,
    load_imdb,
    split_by_movie,
)

REVIEWS = {
    ("train", "pos"): [(0, 9, "Bromwell High is a cartoon comedy."), (1, 7, "Good <br />fun.")],
    ("train", "neg"): [(0, 1, "Awful."), (1, 3, "Not my thing, sadly.")],
    ("test", "pos"): [(0, 10, "Loved it!")],
    ("test", "neg"): [(0, 2, "Boring.")],
}
MOVIES = {
    ("train", "pos"): ["tt0000001", "tt0000002"],
    ("train", "neg"): ["tt0000001", "tt0000003"],
    ("test", "pos"): ["tt0000009"],
    ("test", "neg"): ["tt0000009"],
}


def _files() -> dict[str, bytes]:
    files = {
        "aclImdb/README": b"readme",
        "aclImdb/imdb.vocab": b"the\nand\n",
        "aclImdb/train/labeledBow.feat": b"0:1 1:2\n",
        "aclImdb/train/unsup/0_0.txt": b"unlabeled review",
        "aclImdb/train/urls_unsup.txt": b"http://www.imdb.com/title/tt0000005/usercomments\n",
    }
    for (split, polarity), items in REVIEWS.items():
        for rid, rating, text in items:
            files[f"aclImdb/{split}/{polarity}/{rid}_{rating}.txt"] = text.encode()
        urls = "".join(
            f"http://www.imdb.com/title/{m}/usercomments\n" for m in MOVIES[(split, polarity)]
        )
        files[f"aclImdb/{split}/urls_{polarity}.txt"] = urls.encode()
    return files


def make_tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_reads_official_layout_skipping_unsup_and_feat(tmp_path):
    data = load_imdb(make_tarball(tmp_path / "imdb.tar.gz", _files()))
    assert {split: len(reviews) for split, reviews in data.items()} == {"train": 4, "test": 2}
    train = data["train"]
    assert sorted(r.label for r in train) == [0, 0, 1, 1]
    assert all("unlabeled" not in r.text for r in train)
    first_pos = next(r for r in train if r.label == 1 and r.review_id == 0)
    assert first_pos.text == "Bromwell High is a cartoon comedy."
    assert first_pos.rating == 9 and first_pos.movie_id == "tt0000001"
    assert all((r.rating >= 7) == (r.label == 1) for split in data.values() for r in split)


def test_reads_extracted_directory(tmp_path):
    for name, content in _files().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    for root in (tmp_path, tmp_path / "aclImdb"):
        data = load_imdb(root)
        assert len(data["train"]) == 4 and len(data["test"]) == 2


def test_missing_path_names_it(tmp_path):
    missing = tmp_path / "nowhere.tar.gz"
    with pytest.raises(DatasetError, match=r"nowhere\.tar\.gz.*not found"):
        load_imdb(missing)


def test_corrupt_archive_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"this is not gzip")
    with pytest.raises(DatasetError, match=r"bad\.tar\.gz.*not a readable"):
        load_imdb(bad)


def test_truncated_archive_is_a_clear_error(tmp_path):
    good = make_tarball(tmp_path / "good.tar.gz", _files()).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match=r"cut\.tar\.gz"):
        load_imdb(cut)


def test_archive_without_reviews_names_the_layout(tmp_path):
    empty = make_tarball(tmp_path / "empty.tar.gz", {"aclImdb/README": b"x"})
    with pytest.raises(DatasetError, match=r"no reviews found.*aclImdb/train"):
        load_imdb(empty)


def test_validation_split_keeps_movies_apart(tmp_path):
    train = load_imdb(make_tarball(tmp_path / "imdb.tar.gz", _files()))["train"]
    fit, val = split_by_movie(train, val_fraction=0.3, seed=0)
    assert fit and val and len(fit) + len(val) == len(train)
    assert not {r.movie_id for r in fit} & {r.movie_id for r in val}
    assert split_by_movie(train, 0.3, seed=0) == (fit, val)  # deterministic


def test_bucketed_batches_cover_everything_once_with_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 1000, 1000)
    batches = length_bucketed_batches(lengths, batch_size=10, rng=rng, pool_batches=100)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 50  # sorted within the pool: neighbours have similar lengths


def test_download_verifies_sha256(tmp_path):
    # The real download code, pointed at a local file:// URL (no network in tests).
    source = make_tarball(tmp_path / "source.tar.gz", _files())
    digest = sha256_file(source)
    dest = download_imdb(tmp_path / "dl" / "aclImdb_v1.tar.gz", url=source.as_uri(), sha256=digest)
    assert sha256_file(dest) == digest
    assert len(load_imdb(dest)["train"]) == 4


def test_download_with_wrong_checksum_keeps_nothing(tmp_path):
    source = make_tarball(tmp_path / "source.tar.gz", _files())
    dest = tmp_path / "dl" / "aclImdb_v1.tar.gz"
    with pytest.raises(DatasetError, match="SHA-256"):
        download_imdb(dest, url=source.as_uri(), sha256="0" * 64)
    assert not dest.exists() and not list(dest.parent.glob("*.part"))


def test_official_source_is_pinned():
    assert OFFICIAL_URL == "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
    assert OFFICIAL_SHA256 == "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
