"""The scorer: padded length groups through onnxruntime, one ``session.run`` per group.

This is the reference implementation; ``grouped.GroupedScorer`` runs several groups per
call (``SENTIMENT_GROUPED_RUNS``) and is tested equal to it. A scorer is thread-safe: the
inference threads share one.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from sentiment_core.encoder import pad_batch
from sentiment_core.manifest import BundleError
from service.inference.packing import pack_by_length

Group = Sequence[Sequence[int]]  # one length group: the token ids of its texts


_arena_lock = threading.Lock()
_arena_registered = False


def register_shared_arena() -> None:
    """Register one CPU memory arena with onnxruntime's environment (once per process).

    Why: each session's own arena keeps the memory of the largest run it has seen, and a
    model has four sessions (``grouped.py``); sessions that opt in (``shared_arena``)
    draw from this one instead, so the process keeps only what its concurrent runs need.
    """
    global _arena_registered
    with _arena_lock:
        if _arena_registered:
            return
        cpu = ort.OrtMemoryInfo(
            "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
        )
        ort.create_and_register_allocator(cpu, ort.OrtArenaCfg({}))
        _arena_registered = True


def session_options(intra_op_threads: int, shared_arena: bool = False) -> ort.SessionOptions:
    """``shared_arena``: allocate from the process's one arena (``register_shared_arena``)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if shared_arena:
        register_shared_arena()
        options.add_session_config_entry("session.use_env_allocators", "1")
    return options


def open_session(
    path: Path,
    intra_op_threads: int,
    weights: dict[str, ort.OrtValue] | None = None,
    shared_arena: bool = False,
) -> ort.InferenceSession:
    """A CPU session; ``weights`` are initializers it borrows instead of copying."""
    options = session_options(intra_op_threads, shared_arena)
    for name, value in (weights or {}).items():
        options.add_initializer(name, value)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise BundleError(f"{path}: onnxruntime cannot load it ({exc})") from exc


class Scorer:
    """Output rows for length groups of encoded texts."""

    def __init__(
        self,
        session: ort.InferenceSession,
        input_name: str,
        weights: dict[str, ort.OrtValue] | None = None,
    ):
        """``weights``: initializers ``session`` borrows (held here as long as it lives)."""
        self.session = session
        self.input_name = input_name
        self.weights = weights or {}

    def run_groups(self, groups: list[Group]) -> list[np.ndarray]:
        """The model's output for each group, in order: one array of rows per group."""
        name = self.input_name
        return [self.session.run(None, {name: pad_batch(g)})[0] for g in groups]

    def score(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Output rows for texts of any lengths, in input order (packed into groups here).

        A text's row does not depend on its company: each group is padded to its own
        longest text, and the model masks padding.
        """
        groups = pack_by_length([len(s) for s in sequences])
        outputs = self.run_groups([[sequences[i] for i in g] for g in groups])
        rows = np.empty((len(sequences), outputs[0].shape[-1] if outputs else 1), np.float32)
        for group, out in zip(groups, outputs, strict=True):
            rows[group] = np.asarray(out, dtype=np.float32).reshape(len(group), -1)
        return rows
