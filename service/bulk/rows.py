"""A chunk of input rows, which of them can be scored, and what was scored for them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.pipeline import text_problem

# Bytes that are not UTF-8 arrive as lone surrogates U+DC80..U+DCFF (the readers decode
# with "surrogateescape", so a bad row does not stop the file).
_UNDECODABLE = re.compile("[\udc80-\udcff]")


@dataclass
class Chunk:
    """Consecutive input rows: each row's key (its id, or its row number), its text,
    and, for a row that cannot be scored, why (then its text is None)."""

    keys: list[Any] = field(default_factory=list)
    texts: list[str | None] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    end: int = 0  # input bytes consumed so far (progress), where the reader knows it

    def add(self, key: Any, text: Any, max_chars: int, problem: str | None = None) -> None:
        problem = problem or row_problem(text, max_chars)
        self.keys.append(key)
        self.texts.append(None if problem else text)
        self.errors.append(problem)

    def __len__(self) -> int:
        return len(self.keys)

    def valid(self) -> list[str]:
        return [t for t in self.texts if t is not None]

    @property
    def bad(self) -> int:
        return sum(e is not None for e in self.errors)


def row_problem(text: Any, max_chars: int) -> str | None:
    """Why a row's text cannot be scored (the service's limits), or None."""
    if text is None:
        return "missing text"
    if not isinstance(text, str):
        return f"text is {type(text).__name__}, not a string"
    if not text.isascii() and (bad := _UNDECODABLE.search(text)):
        byte = ord(bad.group()) - 0xDC00
        return f"text is not valid UTF-8 (byte 0x{byte:02x} at character {bad.start()})"
    if problem := text_problem(text, max_chars):
        return f"text {problem}"
    return None


def missing_id(column: str) -> str:
    """A row of a table keyed by its id column that has no id (absent, or null): a bad
    row, not keyed by its number, which could be another row's id."""
    return f"missing id: no {column!r} value"


def id_problem(value: Any, column: str) -> str | None:
    """A keyed row's id value: None or empty (a CSV cell, read as text or, by Ray, as
    bytes: it reads back as no id at all) is a missing id."""
    return missing_id(column) if value is None or value in ("", b"") else None


@dataclass
class Scored:
    """What a scorer returns for one chunk's valid texts, in order."""

    probabilities: np.ndarray  # one row per text, one column per label
    labels: list[str | None]
    models: list[tuple[str, str] | None]  # (name, version) that scored each text
    errors: list[str | None]  # a text the scorer itself refused (a server's 422)


def merged(chunk: Chunk, scored: Scored, width: int) -> Scored:
    """The chunk's rows, bad ones included: scores where there are any."""
    n = len(chunk)
    probabilities = np.full((n, width), np.nan)
    labels: list[str | None] = [None] * n
    models: list[tuple[str, str] | None] = [None] * n
    errors = list(chunk.errors)
    k = 0
    for i, text in enumerate(chunk.texts):
        if text is None:
            continue
        probabilities[i] = scored.probabilities[k]
        labels[i], models[i] = scored.labels[k], scored.models[k]
        errors[i] = scored.errors[k]
        k += 1
    return Scored(probabilities, labels, models, errors)
