"""``sentiment-score``: score every row of a table of texts (CSV, TSV, JSON Lines, Parquet).

Output rows come in input order: the id (or the row number), ``label``, one ``p_<label>``
column per class, ``model`` and ``model_version``, and ``error`` for rows that could not
be scored (missing or empty text, not UTF-8, over the text limit); those are counted and
the run goes on. The exit status is 1 only when there are more of them than
``--max-errors``, 2 for a problem with the command line, the settings, the input as a whole
or the output (a directory, a full disk), 130/143 when interrupted. The output file appears
complete or not at all.

In process by default (the service's encoder, length groups and onnxruntime settings, one
inference thread per usable CPU); with ``--server URL``, through a running service; with
``--ray ADDRESS``, on a Ray cluster (Ray Data and an actor pool: ``ray_run``, ``ray_data``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_settings import SettingsError

from service.bulk.formats import FORMATS, STDIO, UsageError, format_of
from service.bulk.output import (
    Terminated,
    atomic_output,
    check_output,
    is_streamed,
    raise_on_sigterm,
)
from service.bulk.progress import Progress
from service.bulk.readers import Columns, Source, read_chunks
from service.bulk.rows import merged
from service.bulk.writers import Writer, open_writer
from service.errors import settings_error
from service.settings import Settings

PROG = "sentiment-score"
LOCAL_CHUNK = 4096  # rows sorted into length groups together (memory: a few MB)
SERVER_BATCH = 64  # texts per request with --server


# Every option: its flags, then add_argument's keywords.
OPTIONS: list[tuple[tuple[str, ...], dict]] = [
    (("input",), {"metavar": "INPUT", "help": "a .csv, .tsv, .jsonl or .parquet file; - for stdin"}),
    (("-o", "--output"), {"default": STDIO, "help": "output file (format by extension); default: - (stdout)"}),
    (("--text-column",), {"default": "text", "help": "column (or JSON field) holding the text (default: text)"}),
    (("--id-column",), {"help": "column echoed as each row's key (default: id, if there is one; else the row number)"}),
    (("--model",), {"help": "a model name (its promoted version) or a bundle directory; default: the default model"}),
    (("--server",), {"metavar": "URL", "help": "score through a running service (e.g. http://127.0.0.1:8000)"}),
    (("--batch-size",), {"type": int, "metavar": "N", "help": f"in process: rows sorted into length groups together (default {LOCAL_CHUNK}); with --server: texts per request (default {SERVER_BATCH})"}),
    (("--input-format",), {"choices": FORMATS, "help": "default: from INPUT's extension (stdin: csv)"}),
    (("--output-format",), {"choices": FORMATS, "help": "default: from OUTPUT's extension (standard output: INPUT's format)"}),
    (("--max-errors",), {"type": int, "default": 0, "metavar": "N", "help": "exit 1 if more than N rows could not be scored (default 0); the output is written either way"}),
    (("--workers",), {"type": int, "metavar": "N", "help": "inference threads in process (default: one per usable CPU)"}),
    (("--concurrency",), {"type": int, "default": 4, "metavar": "N", "help": "requests in flight with --server (default 4)"}),
    (("--ray",), {"metavar": "ADDRESS", "help": "score on the Ray cluster at ADDRESS (host:port of its head): Ray Data reads the file, an actor pool scores it (needs the 'ray' extra; the file and the models root must be at the same path on every node)"}),
    (("--ray-actors",), {"type": int, "metavar": "N", "help": "with --ray: N scoring actors, 1 CPU each (default: from 1 up to one per CPU of the cluster, as the work queues up)"}),
    (("-q", "--quiet"), {"action": "store_true", "help": "no progress bar, no summary"}),
]  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=(
            "Limits and speed-ups come from the same SENTIMENT_* settings as sentiment-serve, "
            "but one default differs: each onnxruntime session keeps its own memory arena "
            "unless SENTIMENT_SHARED_ARENA is set. "
            "With --server, the API key (if the service needs one) is read from the "
            "environment variable SENTIMENT_API_KEY, never from the command line."
        ),
    )
    for flags, options in OPTIONS:
        p.add_argument(*flags, **options)
    return p


@dataclass
class Counts:
    rows: int = 0
    bad: int = 0


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    raise_on_sigterm()
    counts = Counts()
    try:
        sys.exit(run(args, counts))
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{PROG}: {_stopped('interrupted', args.output, counts)}", file=sys.stderr)
        sys.exit(130)
    except Terminated:
        print(f"{PROG}: {_stopped('terminated', args.output, counts)}", file=sys.stderr)
        sys.exit(143)
    except BrokenPipeError:  # stdout's reader left (`| head`): stop quietly, as `cat` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        sys.exit(141)  # 128 + SIGPIPE, what the shell reports for such a program


def run(args: argparse.Namespace, counts: Counts | None = None) -> int:
    """The run; ``counts`` (rows written so far) is filled in as it goes."""
    started = time.monotonic()
    counts = Counts() if counts is None else counts
    _check(args)
    settings = _settings()
    in_fmt = format_of(args.input, args.input_format, "csv" if args.input == STDIO else None)
    # An output file's extension must name its format: out.xlsx is not quietly CSV.
    out_fmt = format_of(
        args.output, args.output_format, in_fmt if args.output == STDIO else None, "--output-format"
    )
    check_output(args.output)  # before the model loads: not after every row is scored
    columns = Columns(args.text_column, args.id_column or "id", args.id_column is not None)
    batch = args.batch_size or (SERVER_BATCH if args.server else LOCAL_CHUNK)
    plan = (args, settings, in_fmt, out_fmt, columns, batch, counts)
    progress = _on_ray(*plan) if args.ray else _in_process(*plan)
    if not args.quiet:
        progress.finish(_summary(counts, progress.elapsed, time.monotonic() - started, args))
    if counts.bad > args.max_errors:
        print(
            f"{PROG}: {_rows(counts.bad)} could not be scored (more than --max-errors "
            f"{args.max_errors}); see the 'error' column",
            file=sys.stderr,
        )
        return 1
    return 0


def _in_process(args, settings, in_fmt, out_fmt, columns, batch, counts) -> Progress:
    chunk_rows = batch * args.concurrency if args.server else batch
    source = read_chunks(args.input, in_fmt, columns, chunk_rows, settings.max_text_chars)
    scorer = _scorer(args, settings, batch)
    progress = Progress(sys.stderr, source.total, enabled=False if args.quiet else None)
    try:
        with atomic_output(args.output) as stream:
            writer = open_writer(out_fmt, stream, source.key, scorer.labels, source.key_type)
            _pump(source, scorer, writer, progress, counts)
            writer.close()
    finally:
        scorer.close()
    return progress


def _on_ray(args, settings, in_fmt, out_fmt, columns, batch, counts) -> Progress:
    from service.bulk import ray_run

    job = ray_run.start(
        args.ray, args.input, in_fmt, columns, settings, args.model, batch, args.ray_actors
    )
    progress = Progress(sys.stderr, job.total, enabled=False if args.quiet else None)
    with atomic_output(args.output) as stream:
        writer = open_writer(out_fmt, stream, job.key, job.labels, job.key_type)
        for keys, scored in job.batches:
            writer.write(keys, scored)
            writer.flush()  # whole batches out: an interrupted run says how many rows
            counts.rows += len(keys)
            counts.bad += sum(e is not None for e in scored.errors)
            progress.update(counts.rows, counts.rows)
        writer.close()
    return progress


def _check(args: argparse.Namespace) -> None:
    for flag in ("batch_size", "workers", "concurrency", "ray_actors"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.max_errors < 0:
        raise UsageError("--max-errors must be 0 or more")
    if args.ray and args.server:
        raise UsageError("--ray and --server are two ways to score: give one")


def _settings() -> Settings:
    """The SENTIMENT_* settings, or a UsageError naming the first one that is invalid."""
    try:
        return Settings()
    except ValidationError as exc:
        raise UsageError(f"invalid settings: {settings_error(exc)}") from None
    except SettingsError as exc:  # a value its source could not parse at all
        raise UsageError(f"invalid settings: {exc}") from None


def _scorer(args: argparse.Namespace, settings: Settings, batch: int):
    if args.server:
        from service.bulk.remote import RemoteScorer, api_key

        return RemoteScorer(args.server, args.model, batch, args.concurrency, api_key())
    from service.bulk.local import LocalScorer

    return LocalScorer(args.model, settings, args.workers)


def _pump(source: Source, scorer, writer: Writer, progress: Progress, counts: Counts) -> None:
    """Read, score and write chunk by chunk, in order. The next chunk is read, encoded
    and queued before the current one is waited for, so the inference threads never wait
    for the reading; at most two chunks are held at a time."""
    pending: deque = deque()

    def write_oldest() -> None:
        chunk, job = pending.popleft()
        scored = merged(chunk, scorer.result(job), len(scorer.labels))
        writer.write(chunk.keys, scored)
        writer.flush()  # whole chunks out: an interrupted run says how many rows
        counts.rows += len(chunk)
        counts.bad += sum(e is not None for e in scored.errors)
        progress.update(counts.rows, chunk.end)

    for chunk in source.chunks:
        pending.append((chunk, scorer.submit(chunk.valid())))
        if len(pending) > 1:
            write_oldest()
    while pending:
        write_oldest()


def _summary(counts: Counts, scoring_s: float, total_s: float, args: argparse.Namespace) -> str:
    rate = counts.rows / scoring_s if scoring_s > 0 else 0.0
    where = "standard output" if args.output == STDIO else args.output
    return (
        f"{PROG}: {_rows(counts.rows)} ({counts.bad:,} not scored) in {scoring_s:.2f} s: "
        f"{rate:,.0f} rows/s ({total_s:.2f} s with start-up); wrote {where}"
    )


def _stopped(how: str, output: str, counts: Counts) -> str:
    """What a stopped run left: no file, or (streamed) the rows written so far."""
    if not is_streamed(output):
        return f"{how}; no output written"
    where = "standard output" if output == STDIO else output
    return (
        f"{how} after {_rows(counts.rows)} had been written to {where} (perhaps part of "
        "the next ones too); that output is incomplete"
    )


def _rows(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


if __name__ == "__main__":  # python -m service.bulk.cli, as python -m service.bulk
    main()
