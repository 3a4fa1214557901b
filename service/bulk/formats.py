"""Which table format a file is: by ``--input-format``/``--output-format``, else by its
extension."""

from __future__ import annotations

FORMATS = ("csv", "tsv", "jsonl", "parquet")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
STDIO = "-"
PARQUET_HINT = "Parquet needs pyarrow: pip install 'sentiment-lstm-service[score]'"


class UsageError(Exception):
    """A problem with the command line or the input as a whole (exit status 2)."""


def format_of(
    path: str, given: str | None, fallback: str | None = None, flag: str = "--input-format"
) -> str:
    """``given``, else the format ``path``'s extension names, else ``fallback``, else a
    ``UsageError`` that names ``flag`` (the option that would have said)."""
    if given:
        return given
    if path != STDIO:
        suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
        if suffix in _EXTENSIONS:
            return _EXTENSIONS[suffix]
    if fallback:
        return fallback
    known = ", ".join(sorted(_EXTENSIONS))
    where = "standard input/output" if path == STDIO else repr(path)
    raise UsageError(
        f"cannot tell the format of {where} from its extension (known: {known}); "
        f"give {flag} ({', '.join(FORMATS)})"
    )


def pyarrow_modules():
    """``(pyarrow, pyarrow.parquet)``, or a clear ``UsageError`` when not installed."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise UsageError(PARQUET_HINT) from None
    return pyarrow, pyarrow.parquet
