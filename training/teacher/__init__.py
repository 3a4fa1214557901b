"""Distillation from a sentence encoder (a ``[teacher]`` table in a training config).

``spec``: the table; ``weights``: the encoder's files from the ``teacher`` extra, checked;
``mpnet``: the encoder; ``distill``: the teacher fit on its sources' training rows, the
spans it labels, and the soft targets the LSTM learns from (docs/training.md, "Teacher").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.sources import Corpus
    from training.teacher.distill import Distillation
    from training.teacher.spec import TeacherSpec


def teach(
    spec: TeacherSpec | None, corpus: Corpus, labels: Sequence[str], log: Callable[[str], None]
) -> Distillation | None:
    """None without a [teacher] table; else the teacher's spans, already appended to the
    training rows, and its targets by training row (``Distillation``)."""
    if spec is None:
        return None
    from training.teacher.distill import distill

    teacher = distill(spec, corpus, labels, log)
    corpus.train += teacher.spans
    return teacher
