"""Two service configurations side by side: both servers up, the load alternating.

    python -m bench.ab A B [--workload batch64-c4] [--rounds 4] [--slices 3] [--slice-s 3]

A and B are ``NAME`` (the defaults) or ``NAME:key=value,...`` as ``bench.run --variant``
takes them, e.g. ``python -m bench.ab base pin-off:pin_inference_threads=off``.

Why: this machine's speed drifts by 10-30% from minute to minute, so two runs of one
server after another can differ by more than the change being measured. Here both
servers are started, primed and warmed once; then the generator drives A for
``--slice-s`` seconds, then B (the order alternating from slice to slice), and each
slice gives a ratio B/A of two figures measured seconds apart. The idle server uses no
CPU while the other is measured.

A process's speed also depends on where its memory lands: two servers with identical
settings, side by side, differed by -8% to +15% from one start to the next, and by under
2% with address-space randomisation off (``setarch -R``; docs/performance.md, Step 8).
Slices alone would measure one draw of that, so the comparison runs in ``--rounds``, each
with a fresh pair of processes (started in alternating order). A round's answer is the
median of its slices' ratios; the median of the rounds' answers, and how many rounds B
won, are the result. Nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from bench.loadgen import pick_generator, run_load
from bench.systems import System, parse_variant, prime, server_for, wait_idle
from bench.workloads import by_name, sample_reviews, write_payloads


def system_of(spec: str) -> System:
    """``NAME`` alone is the defaults; ``NAME:key=value,...`` as ``bench.run --variant``."""
    if ":" not in spec:
        return System(f"c-{spec}", "this service, defaults")
    return parse_variant(spec)


def slice_rate(result: dict, texts_per_request: int) -> float:
    return result["ok"] * texts_per_request / result["duration_s"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", help="NAME or NAME:key=value,... (the reference)")
    parser.add_argument("b", help="NAME or NAME:key=value,... (the candidate)")
    parser.add_argument("--workload", default="batch64-c4")
    parser.add_argument("--rounds", type=int, default=4, help="fresh server pairs")
    parser.add_argument(
        "--slices", type=int, default=3, help="slice pairs (one A, one B) per round"
    )
    parser.add_argument("--slice-s", type=int, default=3, help="seconds per slice (whole)")
    parser.add_argument("--warmup-s", type=int, default=2, help="per server, before slices")
    parser.add_argument("--reviews", type=int, default=1000, help="IMDB test reviews sampled")
    parser.add_argument("--bundle", type=Path, help="default: the newest committed bundle")
    parser.add_argument("--generator", choices=("wrk", "async"))
    parser.add_argument("--out", type=Path, help="also write the slices as JSON here")
    args = parser.parse_args(argv)

    from service.settings import Settings

    systems = [system_of(args.a), system_of(args.b)]
    if systems[0].key == systems[1].key:
        parser.error("A and B need different names")
    (workload,) = by_name([args.workload])
    generator = pick_generator(args.generator)
    bundle_dir = (args.bundle or Settings().resolved_model_dir()).resolve()
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        logs = Path(tmp)
        payloads = write_payloads(sample_reviews(args.reviews), logs / "payloads")
        load = {"concurrency": workload.concurrency, "generator": generator}
        slices, rounds = [], []
        for r in range(args.rounds):
            order = [0, 1] if r % 2 == 0 else [1, 0]
            servers = {i: server_for(systems[i], bundle_dir, logs, None) for i in order}
            got = _round(r, servers, order, args, payloads, workload, load)
            slices.extend(got)
            rounds.append(statistics.median(s["ratio"] for s in got))
            print(f"round {r + 1}/{args.rounds}: B/A {rounds[-1]:.3f}", flush=True)
    ratios = [s["ratio"] for s in slices]
    summary = {
        "a": systems[0].label,
        "b": systems[1].label,
        "workload": workload.name,
        "generator": generator,
        "slice_s": args.slice_s,
        "median_a": statistics.median(s["a"] for s in slices),
        "median_b": statistics.median(s["b"] for s in slices),
        "median_ratio": statistics.median(rounds),
        "b_ahead": sum(r > 1 for r in rounds),
        "rounds": rounds,
        "slice_median_ratio": statistics.median(ratios),
        "slices": slices,
    }
    print(
        f"{workload.name}: A ({summary['a']}) {summary['median_a']:.1f}, "
        f"B ({summary['b']}) {summary['median_b']:.1f} texts/s (medians); "
        f"B/A median of rounds {summary['median_ratio']:.3f} "
        f"({' / '.join(f'{r:.3f}' for r in rounds)}), B ahead in {summary['b_ahead']} "
        f"of {len(rounds)} rounds"
    )
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _round(
    r: int, servers: dict, order: list[int], args, payloads: dict, workload, load: dict
) -> list[dict]:
    """One fresh pair of servers: started, primed, warmed, then ``args.slices`` slice pairs."""
    body_file = payloads[workload.kind]
    try:
        for i in order:
            servers[i].start(timeout_s=60)
            prime(servers[i], payloads)
            if args.warmup_s > 0:
                run_load(servers[i].url, body_file, duration_s=args.warmup_s, **load)
        slices = []
        for k in range(args.slices):
            rates, errors = [0.0, 0.0], [0, 0]
            for i in order if k % 2 == 0 else order[::-1]:
                wait_idle(servers[i])
                result = run_load(servers[i].url, body_file, duration_s=args.slice_s, **load)
                rates[i] = slice_rate(result, workload.texts_per_request)
                errors[i] = result["errors"]
            ratio = rates[1] / rates[0] if rates[0] else float("nan")
            slices.append(
                {"round": r + 1, "a": rates[0], "b": rates[1], "ratio": ratio, "errors": errors}
            )
            print(
                f"round {r + 1} slice {k + 1}/{args.slices}: A {rates[0]:8.1f}  B {rates[1]:8.1f} "
                f"texts/s  B/A {ratio:.3f}  errors {errors[0]}/{errors[1]}",
                flush=True,
            )
        return slices
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
