"""A binary model from a CSV with labels of its own: the sigmoid bundle of today's format."""

from __future__ import annotations

import json
import random

import pytest

pytest.importorskip("tensorflow")

from sentiment_core.bundle import promoted_bundle
from service.model.loader import load_bundle
from tests.training.test_train_three_class import CONFIG, WORDS, write_csv
from training.train import main

pytestmark = [pytest.mark.slow, pytest.mark.train]


def test_two_labels_of_its_own_give_a_sigmoid_bundle_the_service_loads(tmp_path):
    rng = random.Random(3)
    for name, n in (("train.csv", 240), ("test.csv", 60)):
        write_csv(tmp_path / name, n, rng)
    config = CONFIG.replace('["negative", "neutral", "positive"]', '["bad", "good"]')
    config = config.replace("{ negative = [1, 2], neutral = 3, positive = [4, 5] }",
                            "{ bad = [1, 2], good = [4, 5] }\nskip_labels = [3]")  # fmt: skip
    (tmp_path / "binary.toml").write_text(config)
    models = tmp_path / "models"
    assert main(["--config", str(tmp_path / "binary.toml"), "--models-dir", str(models),
                 "--version", "b1", "--no-quantize", "--no-baseline", "--promote"]) == 0  # fmt: skip
    bundle_dir = models / "shop-sentiment" / "b1"
    assert promoted_bundle(models, "shop-sentiment") == bundle_dir  # --promote
    m = json.loads((bundle_dir / "manifest.json").read_text())
    assert m["labels"] == ["bad", "good"] and m["output"]["kind"] == "sigmoid"
    assert m["decision"] == {"rule": "threshold", "threshold": 0.5}
    assert all("score" in ref for ref in m["reference"])
    assert "out_of_domain" not in m["metrics"]  # its texts are negative/positive
    metrics = json.loads((bundle_dir / "metrics.json").read_text())
    assert metrics["data"]["shop"]["skipped_labels"] == {"label 3": 100}
    bundle = load_bundle(bundle_dir)
    good, bad = bundle.score_texts([" ".join(WORDS["positive"]), " ".join(WORDS["negative"])])
    assert good > 0.5 > bad
