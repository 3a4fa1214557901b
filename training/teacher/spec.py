"""The ``[teacher]`` table of a training config: which sources teach, and how.

    [teacher]
    sources = ["sst5"]        # whose training rows the teacher learns from, and spans of
    spans_per_text = 2        # random contiguous spans per training text of min_words+ words
    alpha = 0.5               # a teacher row's target: alpha·its label + (1-alpha)·teacher's

Every mistake is a ``ConfigError`` naming the key, before any data loads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from training.source_specs import ConfigError, did_you_mean
from training.teacher.weights import MODEL

SPANS_SOURCE = "teacher-spans"  # the spans' source name in the corpus, logs and metrics


@dataclass(frozen=True)
class TeacherSpec:
    sources: tuple[str, ...]
    model: str = MODEL
    spans_per_text: int = 2
    min_words: int = 6
    alpha: float = 0.5
    c_grid: tuple[float, ...] = (0.3, 1.0, 3.0)  # chosen by cross-fitted NLL, train rows only
    folds: int = 5
    seed: int = 7
    cache: Path = field(default=Path(".cache/teacher"))


KEYS = {f for f in TeacherSpec.__dataclass_fields__}


def teacher_spec(
    raw: object, source_names: Sequence[str], base: Path, where: str
) -> TeacherSpec | None:
    """``raw``: the [teacher] table (None: no teacher); ``base``: relative ``cache`` paths'
    folder."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [teacher] must be a table")
    if unknown := sorted(set(raw) - KEYS):
        raise ConfigError(f"{where}: [teacher] has no key {unknown[0]!r}"
                          f"{did_you_mean(unknown[0], KEYS)} (expected {', '.join(sorted(KEYS))})")  # fmt: skip
    sources = raw.get("sources")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
        raise ConfigError(f"{where}: [teacher] sources must name at least one source")
    if missing := [s for s in sources if s not in source_names]:
        raise ConfigError(f"{where}: [teacher] sources: no source named {missing[0]!r} "
                          f"(sources: {', '.join(source_names)})")  # fmt: skip
    if raw.get("model", MODEL) != MODEL:
        raise ConfigError(f"{where}: [teacher] model must be {MODEL!r} (the one teacher there is)")
    grid = raw.get("c_grid", list(TeacherSpec.c_grid))
    if not isinstance(grid, list) or not grid:
        raise ConfigError(f"{where}: [teacher] c_grid must be a list of numbers above 0")
    if not isinstance(cache := raw.get("cache", ".cache/teacher"), str) or not cache:
        raise ConfigError(f"{where}: [teacher] cache must be a folder's path (found {cache!r})")
    cache = Path(cache)
    return TeacherSpec(
        sources=tuple(sources),
        spans_per_text=_int(raw, "spans_per_text", 0, where),
        min_words=_int(raw, "min_words", 4, where),  # spans of 2 to n-2 words need n >= 4
        alpha=_fraction(raw, "alpha", where),
        c_grid=tuple(_positive(c, "c_grid", where) for c in grid),
        folds=_int(raw, "folds", 2, where),
        seed=_int(raw, "seed", 0, where),
        cache=cache if cache.is_absolute() else base / cache,
    )


def _default(key: str):
    return TeacherSpec.__dataclass_fields__[key].default


def _int(raw: dict, key: str, least: int, where: str) -> int:
    value = raw.get(key, _default(key))
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{where}: [teacher] {key} must be a whole number of at least {least} "
                          f"(found {value!r})")  # fmt: skip
    return value


def _fraction(raw: dict, key: str, where: str) -> float:
    value = raw.get(key, _default(key))
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(
            f"{where}: [teacher] {key} must be a number from 0 to 1 (found {value!r})"
        )
    return float(value)


def _positive(value: object, key: str, where: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}: [teacher] {key} must hold numbers above 0 (found {value!r})")
    return float(value)
