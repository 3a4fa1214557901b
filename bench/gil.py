"""In process: what a Python thread beside the inference threads costs them (the GIL).

The service tokenizes in Python (holding the GIL) while two threads run onnxruntime
(which releases it). Each ``session.run`` must take the GIL back to return, and waits
while another thread holds it. This measures that effect without HTTP: 64-review requests
(the benchmark's batch64 payload) cut in two chunks of 32 texts, scored by two inference
threads, either from texts encoded up front ("alone") or fed by one thread that encodes
each request as it goes ("pipeline", as in the service), with one call per length group
or several groups per call (service/grouped.py).

    .venv/bin/python -m bench.gil [--seconds 8]

Prints texts/s and the CPU used (cores) for each of the four cases, measured one after
the other in this process; compare them within one run.
"""

from __future__ import annotations

import argparse
import queue
import tempfile
import threading
import time
from pathlib import Path

from bench.workloads import sample_reviews, texts_of, write_payloads
from service.inference.scorer import Scorer
from service.model.loader import load_bundle
from service.settings import Settings

CHUNK = 32


def _score(bundle, grouped: bool):
    if grouped:
        return bundle.outputs
    return Scorer(bundle.scorer.session, bundle.scorer.input_name).score


def measure(bundle, requests: list[list[str]], grouped: bool, pipeline: bool, seconds: float):
    score = _score(bundle, grouped)
    encoded = None if pipeline else [bundle.encoder.encode_ids(r) for r in requests]
    work: queue.Queue = queue.Queue(maxsize=4)
    done = [0]
    stop = time.perf_counter() + seconds

    def feed() -> None:
        i = 0
        while time.perf_counter() < stop:
            n = i % len(requests)
            ids = encoded[n] if encoded else bundle.encoder.encode_ids(requests[n])
            for k in range(0, len(ids), CHUNK):
                work.put(ids[k : k + CHUNK])
            i += 1
        for _ in range(2):
            work.put(None)

    def infer() -> None:
        while (chunk := work.get()) is not None:
            score(chunk)
            done[0] += len(chunk)

    threads = [threading.Thread(target=feed)] + [threading.Thread(target=infer) for _ in range(2)]
    started, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return done[0] / elapsed, (time.process_time() - cpu) / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--requests", type=int, default=40, help="distinct 64-review requests")
    args = parser.parse_args(argv)

    bundle = load_bundle(Settings().resolved_model_dir())
    with tempfile.TemporaryDirectory() as folder:
        payload = write_payloads(sample_reviews(64 * args.requests), Path(folder))["batch64"]
        texts = texts_of(payload)
    requests = [texts[k : k + 64] for k in range(0, len(texts), 64)]
    for pipeline in (False, True):
        for grouped in (False, True):
            rate, cores = measure(bundle, requests, grouped, pipeline, args.seconds)
            feed = "encoding thread beside" if pipeline else "texts encoded up front"
            calls = "8 groups per call " if grouped else "one call per group"
            print(f"{feed:24s} {calls}: {rate:7.0f} texts/s  {cores:.2f} cores", flush=True)


if __name__ == "__main__":
    main()
