"""In process: what a hostile request's few kilobytes cost, before and after the fixes of
2026-11-28 (docs/security.md). Each line times one input shape that used to cost
quadratic time, through the old way (kept here as the reference) and today's code.

    .venv/bin/python -m bench.hostile [--chars 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import re
import statistics
import time
import zlib
from collections.abc import Callable

from tokenizers import Regex, normalizers

from sentiment_core.tokenizer import BREAK_PATTERN, LEGACY_BREAK_PATTERN
from service.explain import sentences
from service.http.json_body import decoded


def _median_ms(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        with contextlib.suppress(Exception):  # a refusal is an answer: its cost is timed
            work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _old_gzip(body: bytes) -> bytes:
    """json_body.decoded's loop before: each member's leftover copied whole."""
    out, rest = bytearray(), body
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        out += inflater.decompress(rest)
        rest = inflater.unused_data
    return bytes(out)


def _old_title_check(text: str, start: int, end: int, next_start: int) -> bool:
    """The title check before: the whole joined span searched each time."""
    return bool(sentences._TITLE_END.search(text[start:end]))


def _title_joins(text: str, ends_with_title: Callable[[str, int, int, int], bool]) -> int:
    """Spans joined after a title, as ``sentences._joined_after_titles`` joins them."""
    joined = start = 0
    for match in re.finditer(r"\. ", text):
        if ends_with_title(text, start, match.start() + 1, match.end()):
            joined += 1
        else:
            start = match.end()
    return joined


def cases(chars: int) -> list[tuple[str, Callable[[], object], Callable[[], object]]]:
    spaces = "<br" + " " * (chars - 4) + "x"
    nbsp = "<br" + "\u00a0" * (chars - 4) + "x"
    old_re, new_re = re.compile(LEGACY_BREAK_PATTERN), re.compile(BREAK_PATTERN)
    old_rust = normalizers.Replace(Regex(LEGACY_BREAK_PATTERN), " ")
    new_rust = normalizers.Replace(Regex(BREAK_PATTERN), " ")
    titles = ("Dr. The " * (chars // 8 + 1))[:chars]
    members = gzip.compress(b"", mtime=0) * (chars * 10)  # about 20 bytes each
    return [
        ("<br + spaces, Python re", lambda: old_re.sub(" ", spaces), lambda: new_re.sub(" ", spaces)),
        ("<br + NBSP, Python re", lambda: old_re.sub(" ", nbsp), lambda: new_re.sub(" ", nbsp)),
        ("<br + spaces, Rust", lambda: old_rust.normalize_str(spaces), lambda: new_rust.normalize_str(spaces)),
        ("<br + NBSP, Rust", lambda: old_rust.normalize_str(nbsp), lambda: new_rust.normalize_str(nbsp)),
        ("'Dr. The ' titles joined", lambda: _title_joins(titles, _old_title_check),
         lambda: _title_joins(titles, sentences._ends_with_title)),
        (f"gzip, {len(members) // 20:,} empty members", lambda: _old_gzip(members),
         lambda: decoded(members, "gzip", 4 << 20)),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chars", type=int, default=20_000, help="size of each hostile text")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    print(f"| input ({args.chars:,} characters) | before, ms | now, ms | ratio |")
    print("|---|--:|--:|--:|")
    for name, old, new in cases(args.chars):
        before, now = _median_ms(old, args.rounds), _median_ms(new, args.rounds)
        print(f"| {name} | {before:,.1f} | {now:,.2f} | {before / now:,.0f}× |")


if __name__ == "__main__":
    main()
