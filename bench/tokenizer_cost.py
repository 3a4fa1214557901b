"""In process: what encoding costs per review, each encoder against the reference.

The reference encoder is the Rust ``tokenizers`` pipeline (sentiment_core); the service's
fast encoder restates its rules in Python (service/encoding/python_path.py) and, for
calls of many texts, looks their ids up in numpy (service/encoding/vocab_table.py). This
prints each one's cost on the same IMDB test reviews, alternating them for a few rounds,
as medians. All of them give the same ids (tested).

    .venv/bin/python -m bench.tokenizer_cost [--reviews 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.workloads import sample_reviews
from sentiment_core.encoder import TextEncoder
from sentiment_core.manifest import read_manifest
from service.encoding.python_path import PythonPathEncoder
from service.settings import Settings


def _per_text_us(encode, texts: list[str]) -> float:
    started = time.perf_counter()
    encode(texts)
    return (time.perf_counter() - started) / len(texts) * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reviews", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)

    bundle_dir = Settings().resolved_model_dir()
    spec = read_manifest(bundle_dir).input
    reference = TextEncoder.from_file(
        bundle_dir / "tokenizer.json", spec.max_length, spec.truncation
    )
    regex_only = PythonPathEncoder(reference, vocab_table=False)
    fast = PythonPathEncoder(reference)
    texts = sample_reviews(args.reviews)
    requests = [texts[k : k + 64] for k in range(0, len(texts), 64)]

    def per_request(encoder):  # as /predict calls it: one request's texts, ids only
        return lambda _: [encoder.encode(r, with_tokens=False) for r in requests]

    cases = {
        "reference (Rust), 64 reviews per call": per_request(reference),
        "Python path, regex only, 64 per call": per_request(regex_only),
        "Python path + vocab table, 64 per call": per_request(fast),
        "Python path, 1 review per call": lambda t: [
            fast.encode([text], with_tokens=False) for text in t
        ],
    }
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, encode in cases.items():
            timings[name].append(_per_text_us(encode, texts))

    python_path = sum(fast.normalize(t) is not None for t in texts)
    chars = sum(map(len, texts)) / len(texts)
    print(f"{len(texts)} IMDB test reviews, {chars:.0f} characters on average")
    print(f"{python_path} take the Python path, {len(texts) - python_path} the Rust one")
    for name, values in timings.items():
        print(
            f"  {name:42s} median {statistics.median(values):6.1f} µs/review "
            f"(wall, {args.rounds} rounds: {min(values):.1f}-{max(values):.1f})"
        )


if __name__ == "__main__":
    main()
