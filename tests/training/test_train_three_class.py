"""End to end on a small three-class CSV made here: config → train → bundle → served.

The words are clearly separable (praise, complaints, plain facts), so one small model learns
them in a few epochs; what is checked is the path, not the model's quality.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from service.model.loader import load_bundle
from tests.support.servers import make_settings, serve
from training.config import Config
from training.train import main

pytestmark = [pytest.mark.slow, pytest.mark.train]

WORDS = {
    "positive": ["wonderful", "excellent", "superb", "delightful", "brilliant", "loved"],
    "negative": ["awful", "terrible", "horrible", "dreadful", "boring", "hated"],
    "neutral": ["tuesday", "address", "schedule", "located", "meeting", "document"],
}
FILLER = ["the", "a", "it", "was", "this", "and", "is", "of", "our", "new"]
STARS = {"negative": [1, 2], "neutral": [3], "positive": [4, 5]}
OBVIOUS = {
    "positive": "wonderful superb and excellent, I loved it",
    "negative": "awful, terrible and boring, I hated it",
    "neutral": "the meeting schedule is located at the address",
}


def sentence(words: list[str], rng: random.Random) -> str:
    """Three of the label's words among a few fillers, shuffled."""
    picked = rng.choices(words, k=3) + rng.choices(FILLER, k=rng.randint(2, 6))
    rng.shuffle(picked)
    return " ".join(picked)


def write_csv(path, n: int, rng: random.Random) -> None:
    """A ``stars`` column (1-5) the config maps to three classes, and a user id group."""
    lines = ["user,stars,review"]
    for i in range(n):
        label = ["negative", "neutral", "positive"][i % 3]
        text = sentence(WORDS[label], rng)
        lines.append(f'u{i % 40},{rng.choice(STARS[label])},"{text}"')
    lines.append("u1,9,stars out of range")  # a bad row: counted, not fatal
    path.write_text("\n".join(lines) + "\n")


SMALL_MODEL = """epochs = 4
learning_rate = 0.01
lr_decay = 1.0
patience = 2
vocab_size = 200
max_length = 40
units = 16
embedding_dim = 16
embedding_dropout = 0.0
dropout = 0.0
batch_size = 32
parity_texts = 200
"""

CONFIG = """
labels = ["negative", "neutral", "positive"]

[train]
name = "shop-sentiment"
SMALL_MODEL
class_weight = "balanced"
adversarial = 0.5            # trained adversarially: export and parity must not notice
average_weights = 0.9        # and the weights kept are an average: nor this

[[sources]]
name = "shop"
reader = "csv"
train = ["train.csv"]
test = ["test.csv"]
text = "review"
label = "stars"
group = "user"
label_map = { negative = [1, 2], neutral = 3, positive = [4, 5] }
""".replace("SMALL_MODEL\n", SMALL_MODEL)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    rng = random.Random(7)
    write_csv(data / "train.csv", 360, rng)
    write_csv(data / "test.csv", 90, rng)
    (data / "shop.toml").write_text(CONFIG)
    models = data / "models"
    code = main(
        ["--config", str(data / "shop.toml"), "--models-dir", str(models), "--version", "t1"]
    )
    assert code == 0
    return models / "shop-sentiment" / "t1"


def test_bundle_is_a_format_2_softmax_bundle(bundle_dir):
    m = json.loads((bundle_dir / "manifest.json").read_text())
    assert m["format_version"] == 2 and m["labels"] == ["negative", "neutral", "positive"]
    assert m["output"]["kind"] == "softmax" and m["decision"] == {"rule": "argmax"}
    for ref in m["reference"]:
        assert len(ref["probabilities"]) == 3 and sum(ref["probabilities"]) == pytest.approx(
            1, abs=1e-5
        )
    for name in (
        "train_config.toml",
        "confusion.png",
        "curves.png",
        "MODEL_CARD.md",
        "metrics.json",
    ):
        assert name in m["files"], name
    assert m["hyperparameters"]["labels"] == m["labels"]
    assert not list(bundle_dir.parent.glob("*.partial"))


def test_parity_fused_graph_and_figures(bundle_dir):
    m = json.loads((bundle_dir / "manifest.json").read_text())["metrics"]
    assert m["parity"]["texts"] >= 200 and m["parity"]["max_abs_diff"] <= 1e-5
    assert m["parity"]["label_mismatches"] == 0 and m["fused_recurrent_node"] is True
    shop = m["sources"]["shop"]
    assert shop["test"]["n"] == 90 and shop["test"]["accuracy"] >= 0.9
    assert set(shop["baseline"]) >= {"accuracy", "macro_f1", "average_recall"}
    full = json.loads((bundle_dir / "metrics.json").read_text())
    assert full["data"]["shop"]["dropped"] == {"unknown label '9'": 2}  # one per file
    test = full["sources"]["shop"]["test"]
    assert set(test["recall"]) == {"negative", "neutral", "positive"}
    assert np.sum(test["confusion"]["matrix"]) == 90
    card = (bundle_dir / "MODEL_CARD.md").read_text()
    assert "| shop |" in card and "confusion.png" in card and "1 epochs" not in card
    calibration = full["training"]["calibration"]
    assert calibration["method"] == "temperature" and calibration["temperature"] > 0
    assert calibration["val_nll"][1] <= calibration["val_nll"][0]  # the fit minimises it
    assert f"T = {calibration['temperature']:.3f}" in card
    assert json.loads((bundle_dir / "config.json").read_text())["adversarial"] == 0.5
    assert "moving average of the training steps' weights (decay 0.9" in card
    history = full["training"]["history"]
    assert len(history["raw_val_loss"]) == len(history["val_loss"])  # both were validated


def test_the_service_loads_it_and_answers_with_probabilities(bundle_dir):
    bundle = load_bundle(bundle_dir)  # hashes and the reference self-check
    assert bundle.labels == ["negative", "neutral", "positive"]


async def test_served_predictions_are_right_on_obvious_texts(bundle_dir):
    async with serve(make_settings(model_dir=bundle_dir)) as (_, client):
        response = await client.post("/predict", json={"texts": list(OBVIOUS.values())})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["label"] for p in predictions] == list(OBVIOUS)
    for p in predictions:
        assert set(p["probabilities"]) == {"negative", "neutral", "positive"}
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


def test_compare_scores_the_test_split_as_the_job_did(bundle_dir, tmp_path, capsys):
    """python -m training.compare: the same figures as the job's own test scoring."""
    from training.compare import main as compare

    out = tmp_path / "compare.json"
    config = bundle_dir.parents[2] / "shop.toml"
    assert compare(["--config", str(config), "--json", str(out), str(bundle_dir)]) == 0
    figures = json.loads(out.read_text())[str(bundle_dir)]["shop"]
    job = json.loads((bundle_dir / "metrics.json").read_text())["sources"]["shop"]["test"]
    assert figures["rows"] == "90 of 90"
    assert figures["accuracy"] == pytest.approx(job["accuracy"], abs=1e-9)
    assert figures["average_recall"] == pytest.approx(job["average_recall"], abs=1e-9)
    assert f"| {bundle_dir} | shop | 90 of 90 |" in capsys.readouterr().out


def test_refreshing_the_card_rewrites_only_the_card(bundle_dir, tmp_path, capsys):
    """``python -m training.bundle``: a card format change reaches a trained bundle."""
    import shutil

    from training.bundle import main as refresh

    copy = shutil.copytree(bundle_dir, tmp_path / "t1")
    card, manifest = (copy / "MODEL_CARD.md"), (copy / "manifest.json")
    before = json.loads(manifest.read_text())
    card.write_text("# an old card\n")
    assert refresh([str(copy)]) == 0
    assert card.read_text() == (bundle_dir / "MODEL_CARD.md").read_text()
    assert json.loads(manifest.read_text()) == before
    load_bundle(copy)  # every hash holds

    (copy / "metrics.json").write_text("{}")  # the card's source must be the trained one
    assert refresh([str(copy)]) == 2
    assert "metrics.json: sha256" in capsys.readouterr().err


def test_another_init_seed_trains_other_weights_on_the_same_splits(bundle_dir):
    """--init-seed: a seed study's runs share their rows, so their validation losses compare."""
    data = bundle_dir.parents[2]
    args = ["--config", str(data / "shop.toml"), "--models-dir", str(data / "models")]
    assert main([*args, "--version", "t2", "--init-seed", "2", "--no-quantize"]) == 0
    other = bundle_dir.parent / "t2"
    first, second = (json.loads((b / "manifest.json").read_text()) for b in (bundle_dir, other))
    assert (
        second["hyperparameters"]["init_seed"] == 2 and first["hyperparameters"]["init_seed"] == 0
    )
    # The tokenizer is built from the training rows alone: the same file, the same rows.
    assert first["files"]["tokenizer.json"] == second["files"]["tokenizer.json"]
    for split in ("validation", "test"):
        sizes = [m["metrics"]["sources"]["shop"][split]["n"] for m in (first, second)]
        assert sizes[0] == sizes[1] > 0, split
    assert first["files"]["keras.weights.h5"] != second["files"]["keras.weights.h5"]


def test_init_seed_equal_to_seed_is_the_seed_run(bundle_dir):
    """--init-seed set to --seed's value trains the default run again: the same loss at
    every epoch and the same test figures (a seed study can name its first run)."""
    data = bundle_dir.parents[2]
    args = ["--config", str(data / "shop.toml"), "--models-dir", str(data / "models")]
    seed = str(Config().seed)  # the config sets none: the default
    assert main([*args, "--version", "t3", "--init-seed", seed, "--no-quantize"]) == 0
    runs = [
        json.loads((b / "metrics.json").read_text()) for b in (bundle_dir, bundle_dir.parent / "t3")
    ]
    assert runs[0]["training"]["history"] == runs[1]["training"]["history"]
    assert runs[0]["sources"]["shop"]["test"] == runs[1]["sources"]["shop"]["test"]


def test_a_parity_failure_stops_the_job_with_no_bundle(tmp_path, monkeypatch, capsys):
    """ORT and Keras disagreeing (injected on the Keras side) exits 2 and leaves nothing."""
    import training.export

    keras_scores = training.export.keras_scores
    monkeypatch.setattr(
        training.export, "keras_scores", lambda model, seqs: keras_scores(model, seqs) + 1e-3
    )
    write_csv(tmp_path / "train.csv", 120, random.Random(3))
    write_csv(tmp_path / "test.csv", 30, random.Random(4))
    (tmp_path / "shop.toml").write_text(CONFIG.replace("epochs = 4", "epochs = 1"))
    models = tmp_path / "models"
    args = ["--config", str(tmp_path / "shop.toml"), "--models-dir", str(models)]
    assert main([*args, "--version", "bad"]) == 2
    assert "ONNX does not match Keras" in capsys.readouterr().err
    assert not list(models.glob("shop-sentiment/*"))  # no bundle, no .partial folder


def test_the_readme_recipe_without_a_test_split_trains_with_validation_figures(tmp_path, capsys):
    """README "Train on your own CSV", its config as written: no test split, int8 on."""
    from tests.training.test_config import ROOT

    readme = (ROOT / "README.md").read_text()
    recipe = readme.split("cat > mine.toml <<'TOML'\n", 1)[1].split("\nTOML\n", 1)[0]
    (tmp_path / "mine.toml").write_text(recipe)
    write_csv(tmp_path / "reviews.csv", 240, random.Random(5))
    small = ["--epochs", "2", "--units", "16", "--embedding-dim", "16", "--max-length", "40"]
    models = tmp_path / "models"
    args = ["--config", str(tmp_path / "mine.toml"), "--models-dir", str(models), *small]
    assert main([*args, "--version", "r1", "--vocab-size", "200", "--parity-texts", "100"]) == 0
    assert "not served: sentiment-promote my-sentiment r1 serves it" in capsys.readouterr().out
    bundle = models / "my-sentiment" / "r1"
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "No test split in this run's config" in card
    assert "| csv | 24 |" in card  # its validation rows: 10% of 240, by text
    # the baseline beside it, as beside test figures (once missing from such a card)
    metrics = json.loads((bundle / "metrics.json").read_text())
    base = metrics["sources"]["csv"]["baseline_validation"]
    row = next(line for line in card.splitlines() if line.startswith("| csv | 24 |"))
    assert "baseline avg recall |" in card and row.endswith(f" {base['average_recall']:.4f} |")
    assert "![validation confusion matrices](confusion.png)" in card
    assert "int8 variant: validation accuracy" in card and ", test " not in card
    assert (bundle / "confusion.png").stat().st_size > 0
    assert load_bundle(bundle).labels == ["negative", "neutral", "positive"]


# Any label list, not only polarities: the same path for moods.
MOODS = {"sad": WORDS["negative"], "calm": WORDS["neutral"], "glad": WORDS["positive"]}

MOOD_CONFIG = """
labels = ["sad", "calm", "glad"]

[train]
name = "moods"
SMALL_MODEL
quantize = false

[[sources]]
name = "diary"
reader = "csv"
train = ["moods.csv"]
test = ["moods-test.csv"]
text = "entry"
label = "mood"
""".replace("SMALL_MODEL\n", SMALL_MODEL)


def write_mood_csv(path, n: int, rng: random.Random) -> None:
    lines = ["mood,entry"]
    for i in range(n):
        mood = list(MOODS)[i % 3]
        lines.append(f"{mood},{sentence(MOODS[mood], rng)}")
    path.write_text("\n".join(lines) + "\n")


async def test_a_label_set_without_polarities_trains_and_serves(tmp_path):
    rng = random.Random(11)
    write_mood_csv(tmp_path / "moods.csv", 300, rng)
    write_mood_csv(tmp_path / "moods-test.csv", 60, rng)
    (tmp_path / "moods.toml").write_text(MOOD_CONFIG)
    models = tmp_path / "models"
    args = ["--config", str(tmp_path / "moods.toml"), "--models-dir", str(models)]
    assert main([*args, "--version", "m1"]) == 0
    bundle_dir = models / "moods" / "m1"

    metrics = json.loads((bundle_dir / "metrics.json").read_text())
    assert metrics["labels"] == ["sad", "calm", "glad"]
    assert "out_of_domain" not in metrics  # the hand-written texts are polar: not scored
    test = metrics["sources"]["diary"]["test"]
    assert test["n"] == 60 and test["accuracy"] >= 0.9 and "polar_accuracy" not in test
    assert set(test["recall"]) == {"sad", "calm", "glad"}
    assert "There is no neutral class" not in (bundle_dir / "MODEL_CARD.md").read_text()

    moods = {"glad": OBVIOUS["positive"], "sad": OBVIOUS["negative"], "calm": OBVIOUS["neutral"]}
    async with serve(make_settings(model_dir=bundle_dir)) as (_, client):
        response = await client.post("/predict", json={"texts": list(moods.values())})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["label"] for p in predictions] == list(moods)
    for p in predictions:  # no polarity to measure: score is the label's probability
        assert p["score"] == pytest.approx(max(p["probabilities"].values()), abs=1e-6)
