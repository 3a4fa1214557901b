"""The output file appears complete or not at all: it is written under a temporary name
beside it and renamed at the end; an interrupted or failed run removes the temporary file
(a run killed outright, with SIGKILL, leaves it, hidden, but never the output's name).
Standard output (``-``) is written as it goes."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from service.bulk.formats import STDIO, UsageError


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[IO[bytes]]:
    """A binary stream for ``path``; renamed into place when the block completes."""
    if path == STDIO:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    try:
        fd, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".partial", dir=target.parent or "."
        )
    except OSError as exc:
        raise UsageError(f"cannot write beside {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private (0600)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that the temporary output is removed."""


def raise_on_sigterm() -> None:
    def handler(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
