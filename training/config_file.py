"""The training config file (TOML): the model's labels, its sources, and flag defaults.

    labels = ["negative", "neutral", "positive"]
    data_dir = "../../shared/data/sentiment-corpora"   # relative paths start here

    [train]                 # any sentiment-train flag (flags given on the command line win)
    name = "sentiment-general"

    [[sources]]
    name = "sst5"
    reader = "sst5"         # imdb, csv, tsv, jsonl, sst2, sst5, cr, mpqa, blitzer, semeval
    train = ["sst/stsa.fine.train"]
    validation = ["sst/stsa.fine.dev"]
    test = ["sst/stsa.fine.test"]
    label_map = { negative = [0, 1], neutral = 2, positive = [3, 4] }

Every mistake is a ``ConfigError`` naming the key (and the file), before any data loads.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from training.config import Config, config_fields, field_type
from training.source_specs import ConfigError, did_you_mean, source_spec
from training.sources import SourceSpec, default_label_map
from training.teacher.spec import TeacherSpec, teacher_spec

__all__ = ["ConfigError", "Plan", "default_plan", "load_plan", "read_train_table"]

# Tables of flags under a prefix: [pretrain] epochs = 3 is pretrain_epochs = 3 (and, unless
# it says enabled = false, switches pretraining on); [finetune] lr_ratio = 0.5 likewise.
PREFIXED_TABLES = ("pretrain", "finetune")
TOP_KEYS = {"labels", "data_dir", "train", "sources", "teacher", *PREFIXED_TABLES}


@dataclass(frozen=True)
class Plan:
    """What to train on: the model's labels and its sources (from a file or the default)."""

    labels: tuple[str, ...]
    sources: tuple[SourceSpec, ...]
    text: str = ""  # the config file as written, saved into the bundle
    data_dir: Path = field(default=Path("."))
    teacher: TeacherSpec | None = None  # [teacher]: distillation (training/teacher/)


def default_plan(cfg: Config) -> Plan:
    """No config file: the binary IMDB model (its archive: --data, $SENTIMENT_DATA, shared)."""
    labels = ("negative", "positive")
    label_map, skip = default_label_map("imdb", labels)
    imdb = SourceSpec(name="imdb", reader="imdb", label_map=label_map, skip_labels=skip)
    return Plan(labels=labels, sources=(imdb,))


def read_document(path: str) -> dict:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        return tomllib.loads(file.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def read_train_table(path: str) -> dict:
    """The ``[train]`` table, checked against the flags: names, types and choices."""
    document = read_document(path)
    if unknown := sorted(set(document) - TOP_KEYS):
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], TOP_KEYS)} "
            f"(expected {', '.join(sorted(TOP_KEYS))})"
        )
    fields = {f.name: f for f in config_fields() if f.name != "config"}
    values = {}
    for table_name in ("train", *PREFIXED_TABLES):
        table = document.get(table_name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{table_name}] must be a table of flag values")
        if table_name == "pretrain" and "pretrain" in document:
            values["pretrain"] = True  # the table's presence switches it on
        for key, value in table.items():
            name = _setting_name(table_name, key.replace("-", "_"))
            if name not in fields:
                close = did_you_mean(key, _table_keys(table_name, fields))
                raise ConfigError(
                    f"{path}: [{table_name}] has no setting {key!r}{close} "
                    "(see sentiment-train --help)"
                )
            values[name] = _typed(fields[name], value, f"{path}: [{table_name}] {key}")
    return values


def _table_keys(table: str, fields: dict) -> list[str]:
    """The keys a table takes, as written in it (``learning-rate``; ``epochs`` in [pretrain])."""
    if table == "train":
        return [name.replace("_", "-") for name in fields]
    prefix = f"{table}_"
    return [n.removeprefix(prefix).replace("_", "-") for n in fields if n.startswith(prefix)]


def _setting_name(table: str, key: str) -> str:
    if table == "train":
        return key
    return table if key == "enabled" else f"{table}_{key}"


def _typed(f, value, where: str):
    kind = field_type(f)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {kind.__name__}, found {value!r}")
    if (choices := f.metadata.get("choices")) and value not in choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return value


def load_plan(cfg: Config) -> Plan:
    """The plan of ``cfg.config``, or the default IMDB plan without one."""
    if not cfg.config:
        return default_plan(cfg)
    document = read_document(cfg.config)
    labels = _model_labels(document.get("labels"), cfg)
    data_dir = _data_dir(cfg, document)
    raw_sources = document.get("sources")
    if not isinstance(raw_sources, list) or not raw_sources:
        raise ConfigError(f"{cfg.config}: no [[sources]]: name at least one source")
    sources = [
        source_spec(raw, i, labels, data_dir, f"{cfg.config}: sources[{i}]")
        for i, raw in enumerate(raw_sources)
    ]
    names = [s.name for s in sources]
    if duplicate := next((n for n in names if names.count(n) > 1), None):
        raise ConfigError(f"{cfg.config}: two sources are named {duplicate!r}")
    text = Path(cfg.config).read_text(encoding="utf-8-sig")
    base = Path(cfg.config).resolve().parent
    teacher = teacher_spec(document.get("teacher"), names, base, cfg.config)
    return Plan(tuple(labels), tuple(sources), text, data_dir, teacher)


def _model_labels(labels, cfg: Config) -> list[str]:
    where = f"{cfg.config}: labels"
    if (
        not isinstance(labels, list)
        or len(labels) < 2
        or not all(isinstance(x, str) and x for x in labels)
    ):
        raise ConfigError(f"{where}: give the model's labels, at least two strings, in order")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: labels must be distinct")
    head = resolved_head(cfg.head, len(labels))
    if head == "sigmoid" and len(labels) != 2:
        raise ConfigError(f"{where}: a sigmoid head needs exactly two labels (--head softmax)")
    return labels


def resolved_head(head: str, n_labels: int) -> str:
    if head == "auto":
        return "sigmoid" if n_labels == 2 else "softmax"
    return head


def _data_dir(cfg: Config, document: dict) -> Path:
    if cfg.data_dir:
        return Path(cfg.data_dir).resolve()
    base = Path(cfg.config).resolve().parent
    given = document.get("data_dir", ".")
    if not isinstance(given, str):
        raise ConfigError(f"{cfg.config}: data_dir must be a path (a string)")
    return (base / Path(given).expanduser()).resolve()
