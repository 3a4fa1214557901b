"""In process: what tokenizing costs per review, the Python path against the Rust pipeline.

The service encodes on its event loop in Python (service/tokenizer.py: a restatement of
``tokenizer.json``'s rules, tested equal to it; a call with a few thousand characters or
more gets its ASCII texts' ids from numpy, service/vocab_table.py) and falls back to the
Rust ``tokenizers`` pipeline for the few texts Python cannot prove it handles alike. This
prints the costs on the same IMDB test reviews, alternating them for a few rounds, as
medians.

    .venv/bin/python -m bench.tokenizer_cost [--reviews 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.workloads import sample_reviews
from service.bundle import load_bundle
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

    encoder = load_bundle(Settings().resolved_model_dir()).encoder  # what the service serves
    texts = sample_reviews(args.reviews)
    rust = encoder.tokenizer

    requests = [texts[k : k + 64] for k in range(0, len(texts), 64)]
    cases = {
        # As /predict calls it: one request's texts at a time, ids only.
        "service encoder, 64 reviews per call": lambda _: [
            encoder.encode(r, with_tokens=False) for r in requests
        ],
        "service encoder, 1 review per call": lambda t: [
            encoder.encode([text], with_tokens=False) for text in t
        ],
        "Rust pipeline alone, 64 per encode_batch": lambda _: [
            rust.encode_batch(r, add_special_tokens=False) for r in requests
        ],
    }
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, encode in cases.items():
            timings[name].append(_per_text_us(encode, texts))

    python_path = sum(encoder._normalize(t) is not None for t in texts)
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
