"""One ``[[sources]]`` table of a config file → a checked ``SourceSpec``."""

from __future__ import annotations

import codecs
import difflib
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from training.sources import READERS, SourceSpec, default_label_map
from training.sources.base import SPLITS, canonical_label

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
COMMON_KEYS = {
    "name",
    "reader",
    "label_map",
    "skip_labels",
    "weight",
    "sample",
    "val_fraction",
    "class_weight",
}
FILE_KEYS = {"train", "validation", "test", "encoding"}
KEYS = {
    "imdb": COMMON_KEYS | {"path", "test_split"},
    "csv": COMMON_KEYS | FILE_KEYS | {"text", "label", "group", "header", "quoting"},
    "jsonl": COMMON_KEYS | FILE_KEYS | {"text", "label", "group"},
}
TABULAR = ("csv", "tsv", "jsonl")
QUOTING = ("csv", "none")  # "csv": a field may be quoted, as RFC 4180 has it


class ConfigError(ValueError):
    """The training config is wrong; the message names the key (exit code 2)."""


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """``"; did you mean 'epochs'?"`` for a key close to a known one, else nothing."""
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def source_spec(
    raw: object, index: int, labels: Sequence[str], data_dir: Path, where: str
) -> SourceSpec:
    """Check one source's table and resolve its paths against ``data_dir``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: each [[sources]] entry must be a table")
    reader = raw.get("reader")
    if reader not in READERS:
        found = f"found {reader!r}" if "reader" in raw else f"no reader; its keys: {sorted(raw)}"
        raise ConfigError(f"{where}: reader must be one of {', '.join(READERS)} ({found})")
    name = raw.get("name", reader)
    where = f"{where} ({name})"
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"{where}: name must be letters, digits, '.', '_' or '-'")
    allowed = KEYS.get("csv" if reader == "tsv" else reader, COMMON_KEYS | FILE_KEYS)
    if unknown := sorted(set(raw) - allowed):
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], allowed)} "
            f"(expected {', '.join(sorted(allowed))})"
        )
    label_map, skip = _label_map(raw, reader, labels, where)
    spec = SourceSpec(
        name=name,
        reader=reader,
        label_map=label_map,
        skip_labels=skip,
        weight=_number(raw, "weight", 1.0, where, low=0.0),
        sample=_number(raw, "sample", 1.0, where, low=0.0),
        val_fraction=_fraction(raw, where),
        class_weight=_class_weight(raw, where),
        **_files(raw, reader, data_dir, where),
        **_columns(raw, reader, where),
    )
    return spec


def _files(raw: dict, reader: str, data_dir: Path, where: str) -> dict:
    if reader == "imdb":
        path = raw.get("path")
        if path is not None and not isinstance(path, str):
            raise ConfigError(f"{where}: path must be a string")
        test_split = raw.get("test_split", True)
        if not isinstance(test_split, bool):
            raise ConfigError(f"{where}: test_split must be true or false")
        resolved = _existing(data_dir / Path(path).expanduser(), where) if path else None
        return {"path": resolved, "imdb_test": test_split}
    files = {}
    for split in SPLITS:
        given = raw.get(split, [])
        given = [given] if isinstance(given, str) else given
        if not isinstance(given, list) or not all(isinstance(p, str) for p in given):
            raise ConfigError(f"{where}: {split} must be a list of paths")
        files[split] = tuple(_existing(data_dir / Path(p).expanduser(), where) for p in given)
    if not any(files.values()):
        raise ConfigError(f"{where}: give at least one of train, validation, test (file lists)")
    encoding = raw.get("encoding", "latin-1" if reader == "blitzer" else "utf-8")
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ConfigError(f"{where}: unknown encoding {encoding!r}") from None
    return {**files, "encoding": encoding}


def _existing(path: Path, where: str) -> Path:
    if not path.exists():
        raise ConfigError(f"{where}: {path} not found")
    return path.resolve()


def _columns(raw: dict, reader: str, where: str) -> dict:
    if reader not in TABULAR:
        return {}
    header = raw.get("header", True)
    if not isinstance(header, bool):
        raise ConfigError(f"{where}: header must be true or false")
    out = {"header": header}
    if reader != "jsonl":
        quoting = raw.get("quoting", "csv")
        if quoting not in QUOTING:
            raise ConfigError(f"{where}: quoting must be one of {', '.join(QUOTING)}")
        out["quoting"] = quoting
    for key, default in (("text", "text"), ("label", "label"), ("group", None)):
        value = raw.get(key, default)
        numeric = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        if value is not None and not (isinstance(value, str) or (numeric and reader != "jsonl")):
            raise ConfigError(f"{where}: {key} must be a column name (or a number, for csv/tsv)")
        if reader != "jsonl" and not header and isinstance(value, str):
            raise ConfigError(f"{where}: {key}: a file without a header needs column numbers")
        out[key] = value
    return out


def _label_map(raw: dict, reader: str, labels: Sequence[str], where: str):
    """``{model label: source label(s)}`` in the file; ``{source label: model label}`` here."""
    given = raw.get("label_map")
    skip = raw.get("skip_labels", [])
    if not isinstance(skip, list):
        raise ConfigError(f"{where}: skip_labels must be a list")
    if given is None:
        mapping, default_skip = default_label_map(reader, labels)
        if not mapping:
            raise ConfigError(f"{where}: its labels are not the model's: give a label_map")
        return mapping, tuple(sorted({*default_skip, *map(canonical_label, skip)}))
    if not isinstance(given, dict) or not given:
        raise ConfigError(f"{where}: label_map must be a table {{model label = source label(s)}}")
    mapping = {}
    for target, values in given.items():
        if target not in labels:
            raise ConfigError(f"{where}: label_map maps to {target!r}, not one of {list(labels)}")
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, dict | list):
                raise ConfigError(
                    f"{where}: label_map.{target}: a source label is a string, number or "
                    f"boolean (found {value!r})"
                )
            source_label = canonical_label(value)
            if mapping.setdefault(source_label, target) != target:
                raise ConfigError(f"{where}: source label {source_label!r} is mapped twice")
    return mapping, tuple(sorted(map(canonical_label, skip)))


def _number(raw: dict, key: str, default: float, where: str, low: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > low:
        raise ConfigError(f"{where}: {key} must be a number above {low:g} (found {value!r})")
    if not math.isfinite(value):
        raise ConfigError(f"{where}: {key} must be a finite number (found {value!r})")
    return float(value)


SOURCE_CLASS_WEIGHTS = ("none", "balanced")


def _class_weight(raw: dict, where: str) -> str | None:
    value = raw.get("class_weight")
    if value is not None and value not in SOURCE_CLASS_WEIGHTS:
        raise ConfigError(
            f"{where}: class_weight must be one of {', '.join(SOURCE_CLASS_WEIGHTS)} "
            f"(found {value!r}); leave it out to follow the job's --class-weight"
        )
    return value


def _fraction(raw: dict, where: str) -> float | None:
    value = raw.get("val_fraction")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ConfigError(f"{where}: val_fraction must be at least 0 and below 1")
    return float(value)
