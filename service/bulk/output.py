"""The output file appears complete or not at all: it is written under a temporary name
beside it and renamed at the end; an interrupted or failed run removes the temporary file
(a run killed outright, with SIGKILL, leaves it, hidden, but never the output's name).
A symbolic link stays a link: the file it points to is the one replaced. Standard output
(``-``) and an output that is not a regular file (a device such as /dev/null, a FIFO) are
written as the run goes, as ``>`` would. A write that fails (disk full, file too large) is
an ``OutputError`` naming the output, not a traceback.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from service.bulk.formats import STDIO, UsageError


class OutputError(UsageError):
    """The output cannot be written (exit status 2, as for any problem with the run)."""


class OutputStream(io.BufferedWriter):
    """A buffered output whose failed writes say which output failed and why. Once
    ``abandon``-ed (the run failed), nothing more is written, on close either."""

    def __init__(self, raw: io.RawIOBase, name: str):
        super().__init__(raw, 1 << 16)
        self.label = name
        self._abandoned = False

    def write(self, data) -> int:
        if self._abandoned:  # (a Parquet writer's __del__ still writes its footer)
            return len(data)
        try:
            return super().write(data)
        except BrokenPipeError:  # the reader left: the caller stops quietly (exit 141)
            raise
        except OSError as exc:
            raise OutputError(f"cannot write {self.label}: {exc.strerror or exc}") from None

    def flush(self) -> None:
        if self._abandoned:
            return
        try:
            super().flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(f"cannot write {self.label}: {exc.strerror or exc}") from None

    def abandon(self) -> None:
        self._abandoned = True


def is_streamed(path: str) -> bool:
    """Whether ``path`` is written as the run goes: standard output, a device, a FIFO."""
    if path == STDIO:
        return True
    try:
        mode = os.stat(path).st_mode  # (follows a link: what it points to counts)
    except OSError:
        return False  # no such file yet: it is created, atomically
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def check_output(path: str) -> None:
    """Fail before the model is loaded, not after every row is scored, when ``path``
    cannot be an output: a directory, or in a directory that does not exist."""
    if path == STDIO:
        return
    if os.path.isdir(path):
        raise OutputError(f"the output {path} is a directory: give a file name")
    if is_streamed(path):
        if not os.access(path, os.W_OK):
            raise OutputError(f"cannot write {path}: permission denied")
        return
    parent = Path(os.path.realpath(path)).parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: no directory {parent}")


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[IO[bytes]]:
    """A binary stream for ``path``; renamed into place when the block completes."""
    if path == STDIO:
        raw = io.FileIO(sys.stdout.fileno(), "wb", closefd=False)
        with _streamed(raw, "standard output") as stream:
            yield stream
    elif is_streamed(path):
        try:
            raw = io.FileIO(path, "wb")
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror}") from None
        with _streamed(raw, path) as stream:
            yield stream
    else:
        with _renamed(Path(os.path.realpath(path)), path) as stream:
            yield stream


@contextlib.contextmanager
def _streamed(raw: io.FileIO, name: str) -> Iterator[OutputStream]:
    stream = OutputStream(raw, name)
    try:
        yield stream
        stream.flush()
    except BaseException:
        stream.abandon()  # a failed write is not retried on close (a second error)
        raise
    finally:
        stream.close()


@contextlib.contextmanager
def _renamed(target: Path, name: str) -> Iterator[OutputStream]:
    """Written under a hidden name beside ``target`` (a link's target: the link stays)."""
    try:
        fd, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".partial", dir=target.parent
        )
    except OSError as exc:
        raise OutputError(f"cannot write beside {name}: {exc.strerror}") from None
    stream = OutputStream(io.FileIO(fd, "wb"), name)
    try:
        yield stream
        stream.flush()
        _finish(stream.fileno(), temporary, target, name)
    except BaseException:
        stream.abandon()
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    finally:
        stream.close()


def _finish(fd: int, temporary: str, target: Path, name: str) -> None:
    try:
        os.fsync(fd)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private (0600)
        os.replace(temporary, target)
    except OSError as exc:
        raise OutputError(f"cannot write {name}: {exc.strerror or exc}") from None


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
