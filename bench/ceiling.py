"""(d) The in-process ceiling: onnxruntime alone on pre-tokenized, length-sorted batches.

No HTTP, no JSON, no tokenizing or padding inside the timed loop: texts are encoded up
front, sorted by length, cut into batches and padded (the least padding any batcher could
achieve), and each batch is one ``session.run`` on the bundle's session. Every
combination of intra-op threads x batch size x calling threads (each thread calls
``session.run`` on its own batches of one shared session) runs for a fixed time over the
batches in a shuffled order. The service can also pass several batches to one call
(service/grouped.py), so the best thread setting is measured that way too, at the two
smallest batch sizes. The best texts/s of all is the ceiling.

Runs in its own process (``python -m bench.ceiling``) so its CPU time and peak RSS are
measured like a server's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import threading
import time
from pathlib import Path

import numpy as np

from bench.workloads import texts_of
from sentiment_core.batching import length_sorted_batches
from sentiment_core.encoder import pad_batch
from service.inference.affinity import should_pin, thread_pinner, usable_cpus
from service.inference.grouped import GROUP_COUNTS, GroupedScorer


def _batches(ids: list[list[int]], batch_size: int, seed: int = 0) -> list[list[list[int]]]:
    cuts = length_sorted_batches([len(s) for s in ids], batch_size)
    batches = [[ids[i] for i in idx] for idx in cuts]
    # Shuffled, so a time-bounded run sees short and long batches alike.
    np.random.default_rng(seed).shuffle(batches)
    return batches


def measure(
    bundle,
    ids: list[list[int]],
    batch_size: int,
    threads: int,
    budget_s: float,
    batches_per_call: int = 1,
    intra_op_threads: int = 1,
) -> dict:
    """texts/s and per-call latency for one configuration, ``budget_s`` of timed calls.

    The calling threads are pinned to CPUs where the service would pin its inference
    threads (the same rule, service/affinity.py), so both place their threads alike.
    """
    # Padded up front, and run on the raw session (or the grouped sessions): not
    # ``Bundle.outputs``, whose batching policy is part of the service under test.
    padded = [pad_batch(b) for b in _batches(ids, batch_size)]
    if batches_per_call == 1:
        session, feed = bundle.scorer.session, bundle.scorer.input_name
        calls = [(b, len(b)) for b in padded]

        def run(batch):
            session.run(None, {feed: batch})
    else:
        calls = [
            (padded[k : k + batches_per_call], sum(map(len, padded[k : k + batches_per_call])))
            for k in range(0, len(padded), batches_per_call)
        ]
        run = bundle.scorer.run_padded
    # Warm-up: a session's first run allocates. Grouped calls may use any of the grouped
    # sessions and the plain one (for a trailing single batch): warm them all.
    warm = [calls[0][0]] if batches_per_call == 1 else [padded[:n] for n in (1, *GROUP_COUNTS)]
    for first in warm:
        run(first)
    lock = threading.Lock()
    cursor = itertools.count()
    latencies: list[float] = []
    texts = [0]
    deadline = time.perf_counter() + budget_s

    pinned = should_pin("auto", threads, intra_op_threads)
    pin_this_thread = thread_pinner(usable_cpus()) if pinned else None

    def worker() -> None:
        if pin_this_thread is not None:
            pin_this_thread()
        while time.perf_counter() < deadline:
            with lock:
                batch, size = calls[next(cursor) % len(calls)]
            t0 = time.perf_counter()
            run(batch)
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                texts[0] += size

    started, cpu_started = time.perf_counter(), time.process_time()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(budget_s + 120)  # one batch past the deadline at most
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    lat = np.array(latencies) * 1000
    return {
        "batch_size": batch_size,
        "batches_per_call": batches_per_call,
        "threads": threads,
        "pinned": pinned,
        "texts": texts[0],
        "batches": len(latencies),
        "seconds": elapsed,
        "texts_per_s": texts[0] / elapsed,
        "cpu_s": cpu,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


def sweep(
    bundle_dir: Path,
    texts: list[str],
    *,
    variant: str,
    intra_ops: list[int],
    batch_sizes: list[int],
    threads: list[int],
    budget_s: float,
    grouped_calls: bool = True,
) -> list[dict]:
    from service.model.loader import load_bundle

    rows = []
    for intra in intra_ops:
        bundle = load_bundle(bundle_dir, variant=variant, intra_op_threads=intra)
        ids = bundle.encoder.encode_ids(texts)
        for batch_size, n_threads in itertools.product(batch_sizes, threads):
            row = measure(bundle, ids, batch_size, n_threads, budget_s, 1, intra)
            rows.append({"intra_op_threads": intra, "variant": variant, **row})
        best = max((r for r in rows if r["intra_op_threads"] == intra), key=_texts_per_s)
        if grouped_calls and isinstance(bundle.scorer, GroupedScorer):
            for batch_size in sorted(batch_sizes)[:2]:
                row = measure(
                    bundle, ids, batch_size, best["threads"], budget_s, GROUP_COUNTS[-1], intra
                )
                rows.append({"intra_op_threads": intra, "variant": variant, **row})
    return rows


# A configuration, in the order ``--config`` takes it.
CONFIG_KEYS = ("intra_op_threads", "batch_size", "threads", "batches_per_call")


def one_config(
    bundle_dir: Path,
    variant: str,
    budget_s: float,
    texts: list[str],
    intra: int,
    batch_size: int,
    threads: int,
    per_call: int,
) -> dict:
    """One configuration, measured for ``budget_s`` (no sweep)."""
    from service.model.loader import load_bundle

    bundle = load_bundle(bundle_dir, variant=variant, intra_op_threads=intra)
    ids = bundle.encoder.encode_ids(texts)
    row = measure(bundle, ids, batch_size, threads, budget_s, per_call, intra)
    return {"intra_op_threads": intra, "variant": variant, **row}


def _texts_per_s(row: dict) -> float:
    return row["texts_per_s"]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--reviews", type=Path, required=True, help="payload file (JSON lines)")
    parser.add_argument("--sentences", type=Path, help="also measure these with the best config")
    parser.add_argument("--variant", default="float")
    parser.add_argument("--intra-op", default="1,2")
    parser.add_argument("--batch-sizes", default="32,64,128")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--budget", type=float, default=3.0, help="timed seconds per config")
    parser.add_argument(
        "--config",
        metavar="INTRA,BATCH,THREADS,PER_CALL",
        help="measure only this configuration, no sweep (the paired runs of bench.run)",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    common = (args.bundle, args.variant, args.budget)
    if args.config:
        rows = [one_config(*common, texts_of(args.reviews), *_ints(args.config))]
    else:
        rows = sweep(
            args.bundle,
            texts_of(args.reviews),
            variant=args.variant,
            intra_ops=_ints(args.intra_op),
            batch_sizes=_ints(args.batch_sizes),
            threads=_ints(args.threads),
            budget_s=args.budget,
        )
    best = max(rows, key=_texts_per_s)
    result = {"sweep": rows, "best": best, "reviews": best}
    if args.sentences:
        # The best configuration found on reviews, applied to short sentences.
        config = [best[k] for k in CONFIG_KEYS]
        result["sentences"] = one_config(*common, texts_of(args.sentences), *config)
    # ru_maxrss is in KiB on Linux.
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
