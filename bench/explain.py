"""What /explain costs: its latency on ~200-token reviews, and what it does to /predict.

    python -m bench.explain [--duration 15] [--rounds 3] [--predict-concurrency 16]

One server (this checkout's code, default settings, the committed model), and in each
round three phases of ``--duration`` seconds, each a closed loop driven by wrk (or the
async fallback without wrk):

- ``predict alone``: one IMDB test review per request at ``--predict-concurrency``;
- ``explain alone``: one ~200-token review per request (195-205 tokens), one at a time;
- ``both``: the two loads at once, so /predict shares the batcher with the variants.

Figures are medians over the rounds; the JSON (``--out``) keeps every phase.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
from pathlib import Path

from bench.loadgen import have_wrk, pick_generator, run_load
from bench.procs import start_service
from bench.workloads import sample_reviews

TOKENS = (195, 205)  # "a 200-token review"
FIELDS = ("req_s", "p50_ms", "p99_ms", "errors")


def reviews_of_about_200_tokens(count: int) -> list[str]:
    from sentiment_core.encoder import TextEncoder
    from service.settings import Settings

    bundle = Settings(models=["sentiment-lstm"]).resolved_model_dir()
    manifest = json.loads((bundle / "manifest.json").read_text())
    encoder = TextEncoder.from_file(
        bundle / "tokenizer.json", manifest["input"]["max_length"], manifest["input"]["truncation"]
    )
    picked = []
    for text in sample_reviews(25_000, seed=19):
        if TOKENS[0] <= encoder.encode([text])[0].original_length <= TOKENS[1]:
            picked.append(text)
            if len(picked) == count:
                break
    return picked


def write_bodies(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    explain = folder / "explain.jsonl"
    explain.write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in reviews_of_about_200_tokens(64))
    )
    predict = folder / "predict.jsonl"
    predict.write_text("".join(json.dumps({"text": t}) + "\n" for t in sample_reviews(2000)))
    return explain, predict


def load(url: str, bodies: Path, path: str, concurrency: int, seconds: float) -> dict:
    generator = pick_generator(None)
    result = run_load(
        url, bodies, concurrency=concurrency, duration_s=seconds, generator=generator, path=path
    )
    return {
        "req_s": round(result["ok"] / result["duration_s"], 1),
        "p50_ms": round(result["p50_ms"], 1),
        "p99_ms": round(result["p99_ms"], 1),
        "errors": result["errors"],
    }


def both_at_once(url: str, explain: Path, predict: Path, args) -> dict:
    results: dict = {}

    def run(name: str, bodies: Path, path: str, concurrency: int) -> None:
        results[name] = load(url, bodies, path, concurrency, args.duration)

    threads = [
        threading.Thread(target=run, args=("explain", explain, "/explain", 1)),
        threading.Thread(
            target=run, args=("predict", predict, "/predict", args.predict_concurrency)
        ),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def median_of(rounds: list[dict], phase: str, load_name: str) -> dict:
    return {f: statistics.median(r[phase][load_name][f] for r in rounds) for f in FIELDS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--predict-concurrency", type=int, default=16)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-explain"))
    parser.add_argument("--out", type=Path, default=None, help="write every figure as JSON")
    args = parser.parse_args(argv)
    explain, predict = write_bodies(args.work)
    server = start_service(args.work)
    rounds = []
    try:
        url = server.url
        warmup = min(3.0, args.duration)  # not counted
        load(url, explain, "/explain", 1, warmup)
        load(url, predict, "/predict", args.predict_concurrency, warmup)
        for _ in range(args.rounds):
            rounds.append(
                {
                    "predict alone": {
                        "predict": load(
                            url, predict, "/predict", args.predict_concurrency, args.duration
                        )
                    },
                    "explain alone": {"explain": load(url, explain, "/explain", 1, args.duration)},
                    "both": both_at_once(url, explain, predict, args),
                }
            )
    finally:
        server.stop()
    report(rounds, args)


def report(rounds: list[dict], args) -> None:
    c = args.predict_concurrency
    print(
        f"\n/explain on reviews of {TOKENS[0]}-{TOKENS[1]} tokens (one at a time) and /predict "
        f"(one review per request, concurrency {c}); medians of {len(rounds)} rounds of "
        f"{args.duration:g} s; loads by {'wrk' if have_wrk() else 'the async client'}\n"
    )
    print("| phase | endpoint | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|--:|--:|--:|--:|")
    for phase, name in (
        ("explain alone", "explain"),
        ("predict alone", "predict"),
        ("both", "explain"),
        ("both", "predict"),
    ):
        m = median_of(rounds, phase, name)
        print(
            f"| {phase} | /{name} | {m['req_s']:,.1f} | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} | {m['errors']:g} |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "settings": vars(args) | {"work": str(args.work), "out": str(args.out)},
                    "rounds": rounds,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
