"""Logs people can read: aligned plain lines on a terminal, JSON lines anywhere else.

``SENTIMENT_LOG_JSON``: ``auto`` (JSON unless stderr is a terminal), ``true`` or
``false``. Both formats carry the same fields: a record's ``extra`` values (an access
line has method, path, status, duration, request id, model and version, error code).
Logger names say who speaks (``server`` for uvicorn, ``access``, ``model``, ...).
"""

from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with ANSI colours
    "taskName",
    "shown_in_message",  # fields the plain message already spells out
}
_NAMES = {"uvicorn.error": "server", "uvicorn": "server"}  # uvicorn's lines are the server's


def speaker(logger_name: str) -> str:
    """The short name a log line shows: ``service.access`` -> ``access``."""
    return _NAMES.get(logger_name) or logger_name.removeprefix("service.")


def fields(record: logging.LogRecord) -> dict:
    """The record's structured fields (its ``extra``), without logging's own attributes."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and v is not None}


def _timestamp(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": speaker(record.name),
            "msg": record.getMessage(),
            **fields(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class PlainFormatter(logging.Formatter):
    """``<time> <LEVEL> <who> <message>  key=value ...``, aligned for the eye."""

    def format(self, record: logging.LogRecord) -> str:
        shown = set(getattr(record, "shown_in_message", ()))
        extra = " ".join(f"{k}={_plain(v)}" for k, v in fields(record).items() if k not in shown)
        line = (
            f"{_timestamp(record)} {record.levelname:<7} {speaker(record.name):<9} "
            f"{record.getMessage()}"
        )
        line += f"  {extra}" if extra else ""
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _plain(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() for c in text) else text


def use_json(setting: str | bool) -> bool:
    """``auto``: JSON for machines (a pipe, a file, a container log), plain for a terminal."""
    if isinstance(setting, bool):
        return setting
    return setting != "false" and (setting == "true" or not sys.stderr.isatty())


def configure_logging(level: str = "info", json_lines: str | bool = "auto") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json(json_lines) else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Our access line (service.access) replaces uvicorn's; uvicorn's own loggers speak
    # through the root handler, not their own coloured ones.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    server = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, RefusedHeadFilter) for f in server.filters):
        server.addFilter(RefusedHeadFilter())


class RefusedHeadFilter(logging.Filter):
    """Drops uvicorn's "Invalid HTTP request received." warning: the protocol answers those
    bytes and logs a line naming what the parser found (``service.http.protocol``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Invalid HTTP request received."
