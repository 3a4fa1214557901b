"""In-process scoring: the service's model stack, without HTTP, on every core.

The same bundle loader (hashes verified, self-check), encoder, length groups
(``packing.pack_by_length``), onnxruntime session options, grouped runs and thread
pinning as ``sentiment-serve``, from the same ``SENTIMENT_*`` settings (one default
differs: ``shared_arena``, see ``bulk_speedups``). The calling thread reads, encodes and
writes; a pool of inference threads (one per usable CPU by default) runs the length
groups, up to ``GROUP_COUNTS[-1]`` per onnxruntime call.
``submit`` returns at once, so the next chunk is read and encoded while this one is scored.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sentiment_core.bundle import promoted_bundle
from sentiment_core.manifest import MANIFEST_FILE, BundleError
from service.bulk.formats import UsageError
from service.bulk.rows import Scored
from service.inference.affinity import should_pin, thread_pinner, usable_cpus
from service.inference.grouped import GROUP_COUNTS
from service.inference.packing import pack_by_length
from service.model.loader import Bundle, Speedups, load_bundle
from service.model.runtime import speedups
from service.settings import Settings

GROUPS_PER_CALL = GROUP_COUNTS[-1]
# The run's first texts go to the inference threads on their own, so that they start
# at once rather than idle while a whole first chunk is encoded.
HEAD_START = 256


def bulk_speedups(settings: Settings) -> Speedups:
    """The service's speed-ups, but per-session arenas unless SENTIMENT_SHARED_ARENA is set.

    Why: a scoring run loads one model, so the shared arena saves little memory there, and
    it cost ``sentiment-score`` about 2% of its rate (docs/performance.md, Step 9).
    """
    chosen = speedups(settings)
    if "shared_arena" not in settings.model_fields_set:
        chosen = replace(chosen, shared_arena=False)
    return chosen


@dataclass
class Job:
    size: int
    units: list[list[list[int]]]  # per onnxruntime call: its length groups (text indices)
    futures: list[Future]


class LocalScorer:
    def __init__(self, model: str | None, settings: Settings, workers: int | None = None):
        folder = bundle_dir(model, settings)
        try:
            self.bundle: Bundle = load_bundle(
                folder,
                variant=settings.model_variant,
                intra_op_threads=settings.intra_op_threads,
                speedups=bulk_speedups(settings),
            )
        except BundleError as exc:  # tampered, incomplete, fails its self-check
            raise UsageError(f"the bundle {folder} cannot be used: {exc}") from None
        manifest = self.bundle.manifest
        self.labels = list(manifest.labels)
        self.model = (self.bundle.name, self.bundle.version)
        cpus = usable_cpus()
        self.workers = workers or len(cpus)
        pin = should_pin(settings.pin_inference_threads, self.workers, settings.intra_op_threads)
        self._pool = ThreadPoolExecutor(
            self.workers,
            thread_name_prefix="inference",
            initializer=thread_pinner(cpus) if pin else None,
        )
        self._started = False

    def submit(self, texts: list[str], first: bool | None = None) -> Job:
        """Encode ``texts`` here and queue their length groups on the inference threads.
        ``first``: whether these are the run's first texts (default: the first call's),
        whose head start groups them apart (``sentiment-score --ray``'s actors say)."""
        job = Job(len(texts), [], [])
        start = 0
        if (not self._started if first is None else first) and len(texts) > HEAD_START:
            self._queue(job, texts, 0, HEAD_START)
            start = HEAD_START
        self._started = True
        self._queue(job, texts, start, len(texts))
        return job

    def _queue(self, job: Job, texts: list[str], start: int, end: int) -> None:
        ids = self.bundle.encoder.encode_ids(texts[start:end])
        groups = [[start + i for i in g] for g in pack_by_length([len(s) for s in ids])]
        units = [groups[k : k + GROUPS_PER_CALL] for k in range(0, len(groups), GROUPS_PER_CALL)]
        # Longest calls first: the threads end the chunk together, on short calls.
        units.sort(key=lambda unit: -sum(len(ids[g[-1] - start]) * len(g) for g in unit))
        run = self.bundle.run_groups
        for unit in units:
            job.units.append(unit)
            job.futures.append(self._pool.submit(run, [[ids[i - start] for i in g] for g in unit]))

    def result(self, job: Job) -> Scored:
        """The job's scores, in the order its texts were submitted."""
        manifest = self.bundle.manifest
        if not job.size:  # a chunk of bad rows only: nothing was run (nor can 0 rows reshape)
            return Scored(np.empty((0, len(self.labels))), [], [], [])
        rows = np.empty((job.size, manifest.output_width), dtype=np.float32)
        for unit, future in zip(job.units, job.futures, strict=True):
            for group, out in zip(unit, future.result(), strict=True):
                rows[group] = np.asarray(out, dtype=np.float32).reshape(len(group), -1)
        predicted = manifest.predicted(rows)
        return Scored(
            probabilities=manifest.probabilities(rows),
            labels=[self.labels[i] for i in predicted],
            models=[self.model] * job.size,
            errors=[None] * job.size,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def bundle_dir(model: str | None, settings: Settings) -> Path:
    """``--model``: a bundle directory, or a model name (its promoted version under the
    models root); none: the service's default model."""
    try:
        if model is None:
            return settings.resolved_model_dir()
        if (Path(model) / MANIFEST_FILE).is_file():
            return Path(model)
        if "/" in model or model.startswith("."):  # a path, not a model name
            raise UsageError(f"--model {model}: no {MANIFEST_FILE} there (not a bundle directory)")
        return promoted_bundle(settings.models_root, model)
    except BundleError as exc:
        raise UsageError(f"no model to score with: {exc}") from None
