"""The training config file and the command line: precedence, shipped configs, and every
mistake refused with a message that names it, before any data loads."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.cli import build_parser, models_folder, parse_args
from training.config import CELLS, POOLINGS, Config
from training.config_file import ConfigError, default_plan, load_plan
from training.data import default_data_path
from training.train import main

ROOT = Path(__file__).resolve().parents[2]
CORPORA = ROOT / ".." / "shared" / "data" / "sentiment-corpora"


def plan_of(tmp_path: Path, text: str, *flags: str):
    path = tmp_path / "train.toml"
    path.write_text(text)
    cfg = parse_args(["--config", str(path), *flags])
    return cfg, load_plan(cfg)


CSV_SOURCE = """
[[sources]]
name = "shop"
reader = "csv"
train = ["shop.csv"]
"""


@pytest.fixture
def shop(tmp_path):
    (tmp_path / "shop.csv").write_text("text,label\nnice,positive\n")
    return tmp_path


def test_precedence_defaults_then_file_then_flags(shop):
    text = (
        'labels = ["negative", "positive"]\n[train]\nepochs = 3\nlearning-rate = 1\n' + CSV_SOURCE
    )
    cfg, plan = plan_of(shop, text, "--epochs", "5")
    assert cfg.epochs == 5 and cfg.learning_rate == 1.0 and cfg.units == Config().units
    assert plan.labels == ("negative", "positive")
    assert plan.sources[0].train == ((shop / "shop.csv").resolve(),)
    assert plan.text.startswith("labels")


def test_a_config_naming_no_model_trains_one_named_after_the_file(shop):
    """Not the default sentiment-lstm: --promote would have replaced the IMDB model."""
    labels = 'labels = ["negative", "neutral", "positive"]\n'
    cfg, _ = plan_of(shop, labels + CSV_SOURCE)
    assert cfg.name == "train"  # train.toml
    cfg, _ = plan_of(shop, labels + '[train]\nname = "mine"\n' + CSV_SOURCE)
    assert cfg.name == "mine"
    cfg, _ = plan_of(shop, labels + CSV_SOURCE, "--name", "flagged")
    assert cfg.name == "flagged"
    spaced = shop / "my config.toml"
    spaced.write_text(labels + CSV_SOURCE)
    with pytest.raises(ConfigError, match=r"file's name 'my config' is not a model name.*--name"):
        parse_args(["--config", str(spaced)])
    assert parse_args(["--config", str(spaced), "--name", "mine"]).name == "mine"


def test_a_config_file_may_start_with_a_byte_order_mark_and_paths_with_a_tilde(shop, monkeypatch):
    monkeypatch.setenv("HOME", str(shop))
    path = shop / "bom.toml"
    source = CSV_SOURCE.replace('"shop.csv"', '"~/shop.csv"')
    path.write_text("\ufeff" + 'labels = ["negative", "positive"]\n[train]\nepochs = 2\n' + source)
    cfg = parse_args(["--config", str(path)])
    assert cfg.epochs == 2 and cfg.name == "bom"
    assert load_plan(cfg).sources[0].train == ((shop / "shop.csv").resolve(),)


def test_the_shipped_imdb_config_is_the_default():
    cfg = parse_args(["--config", str(ROOT / "configs" / "imdb.toml")])
    plan = load_plan(cfg)
    assert dataclasses.replace(cfg, config="") == Config()
    assert (plan.labels, plan.sources) == (
        default_plan(Config()).labels,
        default_plan(Config()).sources,
    )
    assert plan.sources[0].reader == "imdb" and plan.sources[0].path is None  # --data, env, shared


@pytest.mark.skipif(not CORPORA.is_dir(), reason="needs ../shared/data/sentiment-corpora")
def test_the_general_config_holds_out_what_issue_15_names():
    cfg = parse_args(["--config", str(ROOT / "configs" / "general.toml")])
    plan = load_plan(cfg)
    assert cfg.name == "sentiment-general" and cfg.class_weight == "balanced-per-source"
    assert plan.labels == ("negative", "neutral", "positive")
    tests = {s.name: [p.name for p in s.test] for s in plan.sources}
    assert tests["sst2"] == ["stsa.binary.test"] and tests["sst5"] == ["stsa.fine.test"]
    assert tests["semeval"] == ["twitter-2016test-A.tsv"] and tests["blitzer"] == ["kitchen"]
    imdb = next(s for s in plan.sources if s.reader == "imdb")
    assert imdb.imdb_test and not any("2016test" in p.name for s in plan.sources for p in s.train)


# Where and how a run wrote its bundle, not what it trained.
NOT_THE_RECIPE = {"config", "data", "data_dir", "models_dir", "pretrain_cache", "version"}
NOT_THE_RECIPE |= {"promote", "force", "labels", "sources"}


def test_the_general_config_is_the_committed_general_models_recipe():
    cfg = parse_args(["--config", str(ROOT / "configs" / "general.toml")]).as_dict()
    models = ROOT / "models" / "sentiment-general"
    committed = (models / (models / "PROMOTED").read_text().strip() / "config.json").read_text()
    # An option added after the model was trained is absent from its config.json: at its
    # default (off), that is the recipe the model was trained with.
    recipe = {**Config().as_dict(), **json.loads(committed)}
    recipe = {k: v for k, v in recipe.items() if k not in NOT_THE_RECIPE}
    assert recipe == {k: v for k, v in cfg.items() if k not in NOT_THE_RECIPE}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("labels = [\n", "not valid TOML"),
        ('labels = ["a", "b"]\nmodel = 1\n' + CSV_SOURCE, "unknown key 'model'"),
        ('labels = ["negative", "positive"]\n[train]\nepoch = 2\n' + CSV_SOURCE, "no setting 'epoch'; did you mean 'epochs'"),
        ('labels = ["negative", "positive"]\n[pretrain]\nepoch = 2\n' + CSV_SOURCE, "no setting 'epoch'; did you mean 'epochs'"),
        ('labels = ["negative", "positive"]\ndatadir = "."\n' + CSV_SOURCE, "unknown key 'datadir'; did you mean 'data_dir'"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + "lable_map = {}\n", "unknown key 'lable_map'; did you mean 'label_map'"),
        ('labels = ["negative", "positive"]\n[[sources]]\nreeder = "csv"\ntrain = ["shop.csv"]\n', "reader must be one of .*no reader; its keys: \\['reeder', 'train'\\]"),
        ('labels = ["negative", "positive"]\n[train]\nepochs = "2"\n' + CSV_SOURCE, "epochs: expected int"),
        ('labels = ["negative", "positive"]\n[train]\ncell = "transformer"\n' + CSV_SOURCE, "not one of lstm"),
        ('labels = ["negative"]\n' + CSV_SOURCE, "at least two"),
        ('labels = ["negative", "negative"]\n' + CSV_SOURCE, "distinct"),
        ('labels = ["a", "b", "c"]\n[train]\nhead = "sigmoid"\n' + CSV_SOURCE, "exactly two"),
        ('labels = ["negative", "positive"]\n', "no \\[\\[sources\\]\\]"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE.replace('"csv"', '"xml"'), "reader must be one of"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE.replace("shop.csv", "gone.csv"), "gone.csv not found"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + "colour = 1\n", "unknown key 'colour'"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + "weight = 0\n", "weight must be a number above 0"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + "weight = nan\n", "weight must be a number above 0"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + "weight = inf\n", "weight must be a finite number"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + "sample = inf\n", "sample must be a finite number"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + "sample = nan\n", "sample must be a number above 0"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + "val_fraction = 1\n", "val_fraction"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + 'class_weight = "balanced-per-source"\n', "class_weight must be one of none, balanced"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + 'encoding = "klingon"\n', "unknown encoding"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + "header = false\n", "needs column numbers"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + "label_map = { neutral = 2 }\n", "maps to 'neutral'"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + "label_map = { negative = 1, positive = [1] }\n", "mapped twice"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + "label_map = { positive = { a = 1 } }\n", "label_map.positive: a source label is a string"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + 'quoting = "minimal"\n', "quoting must be one of csv, none"),
        ('labels = ["negative", "positive"]\n' + CSV_SOURCE + CSV_SOURCE, "two sources are named 'shop'"),
        ('labels = ["negative", "positive"]\n[[sources]]\nreader = "csv"\n', "at least one of train"),
        ('labels = ["negative", "positive"]\n[[sources]]\nreader = "jsonl"\ntrain = ["shop.csv"]\ntext = 0\n', "column name"),
        ('labels = ["negative", "positive"]\n[[sources]]\nreader = "imdb"\ntrain = ["x"]\n', "unknown key 'train'"),
    ],
)  # fmt: skip
def test_config_mistakes_name_the_key(shop, text, message):
    with pytest.raises(ConfigError, match=message):
        plan_of(shop, text)


def test_a_source_can_set_its_own_class_weight(shop):
    text = 'labels = ["negative", "positive"]\n' + CSV_SOURCE
    assert plan_of(shop, text)[1].sources[0].class_weight is None  # follows --class-weight
    _, plan = plan_of(shop, text + 'class_weight = "none"\n')
    assert plan.sources[0].class_weight == "none"


def test_a_named_corpus_with_other_labels_needs_a_label_map(shop):
    text = 'labels = ["bad", "good"]\n[[sources]]\nreader = "sst2"\ntrain = ["shop.csv"]\n'
    with pytest.raises(ConfigError, match="give a label_map"):
        plan_of(shop, text)
    _, plan = plan_of(shop, text + 'label_map = { bad = 0, good = "1" }\n')
    assert plan.sources[0].label_map == {"0": "bad", "1": "good"}


def test_choice_lists_agree_with_the_model():
    keras = pytest.importorskip("keras")  # noqa: F841
    from training import model

    assert set(CELLS) == set(model.CELLS) and POOLINGS == model.POOLINGS


# -- the command line ----------------------------------------------------------------------------


def test_help_describes_every_flag_with_its_default():
    text = build_parser().format_help()
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
    assert text.count("(default:") >= len(dataclasses.fields(Config))
    assert "one of: lstm, gru, simple_rnn" in text


def run_cli(*args: str, prelude: str = "") -> subprocess.CompletedProcess:
    code = (
        f"import sys\n{prelude}\nfrom training.train import main\ncode = main({list(args)!r})\n"
        "print('tensorflow loaded:', 'tensorflow' in sys.modules)\nsys.exit(code)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_an_invalid_choice_is_refused_at_once_in_one_line():
    done = run_cli("--cell", "transformer")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "sentiment-train: error: argument --cell: invalid choice: 'transformer' "
        "(choose from 'lstm', 'gru', 'simple_rnn') (see sentiment-train --help)"
    ]


def test_without_tensorflow_it_says_how_to_install_it(tmp_path):
    done = run_cli("--models-dir", str(tmp_path), prelude="sys.modules['tensorflow'] = None")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "Run `make train`" in done.stderr and "missing: tensorflow" in done.stderr


def test_config_errors_exit_2_without_a_traceback(shop):
    (shop / "bad.toml").write_text('labels = ["negative", "positive"]\n[train]\nepochs = "x"\n')
    done = run_cli("--config", str(shop / "bad.toml"), "--models-dir", str(shop))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "epochs: expected int" in done.stderr
    assert "tensorflow loaded: False" in done.stdout


def test_an_unwritable_models_dir_says_how_to_fix_it(tmp_path, capsys):
    blocker = tmp_path / "models"
    blocker.write_text("a file where the models folder should be")
    assert main(["--models-dir", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert "cannot write model bundles" in err and "SENTIMENT_UID" in err


def test_missing_data_fails_before_a_folder_is_left(tmp_path, capsys):
    pytest.importorskip("tensorflow")
    code = main(["--data", str(tmp_path / "absent.tar.gz"), "--models-dir", str(tmp_path)])
    assert code == 2 and "absent.tar.gz" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.partial"))
    assert default_data_path()  # the default still resolves without a config


def test_the_readme_recipe_for_your_own_csv_reads(tmp_path):
    readme = (ROOT / "README.md").read_text()
    recipe = readme.split("cat > mine.toml <<'TOML'\n", 1)[1].split("\nTOML\n", 1)[0]
    (tmp_path / "mine.toml").write_text(recipe)
    (tmp_path / "reviews.csv").write_text("review,stars\nLovely,5\nMeh,3\nBroken,1\nOdd,0\n")
    cfg = parse_args(["--config", str(tmp_path / "mine.toml")])
    plan = load_plan(cfg)
    assert cfg.name == "my-sentiment" and plan.labels == ("negative", "neutral", "positive")
    import numpy as np

    from training.sources import LoadOptions, load_corpus

    corpus = load_corpus(plan.sources, LoadOptions(plan.labels, 0.0, 0), np.random.default_rng(0))
    assert [(e.text, e.label) for e in corpus.train] == [
        ("Lovely", "positive"), ("Meh", "neutral"), ("Broken", "negative"),
    ]  # fmt: skip
    assert corpus.reports["csv"].dropped == {"unknown label '0'": 1}


def test_a_missing_column_exits_2_naming_it_and_leaves_no_folder(shop, capsys):
    pytest.importorskip("tensorflow")
    config = shop / "train.toml"
    config.write_text('labels = ["negative", "positive"]\n' + CSV_SOURCE + 'text = "review"\n')
    models = shop / "models"
    assert main(["--config", str(config), "--models-dir", str(models)]) == 2
    err = capsys.readouterr().err
    assert "no column 'review' (its columns: 'text', 'label')" in err and "Traceback" not in err
    assert not list(models.iterdir())  # neither a .partial folder nor an empty models/<name>


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--max-length", "0"], "--max-length must be at least 1"),
        (["--vocab-size", "2"], "--vocab-size must be at least 3"),
        (["--limit", "-5"], "--limit must be at least 0"),
        (["--seed", "-1"], "--seed must be at least 0"),
        (["--init-seed", "-2"], "--init-seed must be at least 0"),
        (["--parity-texts", "0"], "--parity-texts must be at least 1"),
        (["--val-fraction", "1.5"], "--val-fraction must be at least 0 and below 1"),
        (["--dropout", "1"], "--dropout must be at least 0 and below 1"),
        (["--learning-rate", "0"], "--learning-rate must be above 0"),
        (["--lr-decay", "1.5"], "--lr-decay must be in"),
        # NaN passes every range check by comparison: a NaN loss and a broken bundle, exit 0
        (["--learning-rate", "nan"], "--learning-rate must be a finite number (found nan)"),
        (["--dropout", "nan"], "--dropout must be a finite number"),
        (["--adversarial", "inf"], "--adversarial must be a finite number (found inf)"),
        # folder names: once refused only when the bundle was written, after the whole job
        (["--version", "bad version"], "--version 'bad version' must be 1-128 letters"),
        (["--version", "a/b"], "--version 'a/b' must be"),
        (["--name", "../../x"], "--name '../../x' must be"),
        (["--name", ""], "--name must not be empty"),
    ],
)
def test_values_out_of_range_are_refused_before_any_data_loads(tmp_path, capsys, flags, message):
    assert main([*flags, "--models-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_relative_paths_start_from_where_they_are_written(tmp_path, monkeypatch):
    """A flag's relative path starts from the working directory, a config file's from the
    file's folder; the defaults stay under the project root (where sentiment-serve reads)."""
    monkeypatch.chdir(tmp_path)
    cfg = parse_args(["--models-dir", "mine", "--pretrain-cache", "cache"])
    assert models_folder(cfg) == tmp_path / "mine" / "sentiment-lstm"
    assert cfg.pretrain_cache == str(tmp_path / "cache")
    (tmp_path / "conf").mkdir()
    config = tmp_path / "conf" / "job.toml"
    config.write_text('labels = ["negative", "positive"]\n[train]\nmodels_dir = "out"\n')
    assert models_folder(parse_args(["--config", str(config)])).parent == tmp_path / "conf" / "out"
    defaults = parse_args([])
    assert models_folder(defaults) == ROOT / "models" / "sentiment-lstm"
    assert defaults.pretrain_cache == ".cache/pretrain"  # resolved under the project root


def test_a_smoke_run_is_promoted_only_with_force(tmp_path, capsys):
    code = main(["--limit", "50", "--promote", "--models-dir", str(tmp_path)])
    assert code == 2
    assert "--force" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before any work
