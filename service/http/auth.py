"""Optional API keys: every route but health, metrics and the docs needs one when set.

``SENTIMENT_API_KEYS`` (comma-separated) and/or ``SENTIMENT_API_KEYS_FILE`` (one key per
line, ``#`` comments; re-read when it changes, so keys rotate without a restart; a new file
that cannot be read, is not UTF-8 or holds no key leaves the keys as they were). A key is
sent as ``Authorization: Bearer <key>``, checked before the body is read, compared in
constant time (against a digest, every key, no early exit). Logs carry a key id (a short
hash of the key), never the key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from pathlib import Path

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import Unauthorized
from service.http.error_handlers import service_error_response
from service.settings import read_keys_file

log = logging.getLogger("service.auth")
# Paths anyone may call: probes, metrics scrapes, and pages that hold no data.
OPEN_PATHS = frozenset(
    {"/health/live", "/health/ready", "/metrics", "/v2/health/live", "/v2/health/ready"}
    | {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/", "/favicon.ico"}
)
OPEN_PREFIXES = ("/static/", "/admin/")  # (the admin API has its own token)
_RECHECK_FILE_S = 1.0


def key_id(key: str) -> str:
    """What logs show for a key: enough to tell clients apart, useless to an attacker."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


class ApiKeys:
    def __init__(self, keys: list[str], file: Path | None = None):
        self._given = [k for k in keys if k]
        self._file = file
        self._file_state: tuple[int, ...] | None = None
        self._checked_at = 0.0
        self._digests: dict[bytes, str] = {}
        self._use([])
        self._read_file_if_changed()

    @property
    def enabled(self) -> bool:
        return bool(self._given) or self._file is not None

    def __len__(self) -> int:
        return len(self._digests)

    def describe(self) -> str:
        """The start-up line: which mode is on."""
        if not self.enabled:
            return (
                "access control off: any client that reaches the port may call the API "
                "(set SENTIMENT_API_KEYS or SENTIMENT_API_KEYS_FILE to require keys)"
            )
        source = " and ".join(
            name
            for name, used in (("SENTIMENT_API_KEYS", self._given), ("a file", self._file))
            if used
        )
        return f"access control on: {len(self)} API keys from {source}"

    def identify(self, presented: str) -> str | None:
        """The key id of ``presented`` if it is a current key, else None."""
        self._reload_if_changed()
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for known, ident in self._digests.items():  # every key: no early exit
            if hmac.compare_digest(digest, known):
                found = ident
        return found

    def _use(self, file_keys: list[str]) -> None:
        keys = self._given + file_keys
        self._digests = {hashlib.sha256(k.encode()).digest(): key_id(k) for k in keys}

    def _reload_if_changed(self) -> None:
        if self._file is None or time.monotonic() - self._checked_at < _RECHECK_FILE_S:
            return
        self._checked_at = time.monotonic()
        if self._read_file_if_changed():
            log.info("API keys reloaded", extra={"keys": len(self._digests)})

    def _read_file_if_changed(self) -> bool:
        """Whether the file changed and its keys are now the file's keys."""
        if self._file is None or (state := _file_state(self._file)) in (None, self._file_state):
            return False  # gone (a rotation half done) or unchanged: keep the keys we had
        self._file_state = state  # a file that fails is reported once, not on every request
        try:
            file_keys = read_keys_file(self._file)
        except OSError as exc:
            return self._keep_keys(f"cannot be read: {exc.strerror or exc}")
        except UnicodeDecodeError as exc:
            return self._keep_keys(f"is not UTF-8 text (byte {exc.start})")
        if not file_keys:  # also a file rewritten in place, caught half written
            return self._keep_keys("holds no keys")
        self._use(file_keys)
        return True

    def _keep_keys(self, why: str) -> bool:
        log.warning(
            "API keys file not used, the keys read before stay",
            extra={"file": str(self._file), "why": why, "keys": len(self._digests)},
        )
        return False


def _file_state(file: Path) -> tuple[int, ...] | None:
    """What changes when the file does: replaced, rewritten, or its permissions fixed."""
    try:
        stat = file.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


class ApiKeyMiddleware:
    """401 + WWW-Authenticate for a protected path without a current key (before the body)."""

    def __init__(self, app: ASGIApp, keys: ApiKeys):
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open(scope["path"]):
            return await self.app(scope, receive, send)
        ident = self.keys.identify(_bearer(scope))
        if ident is None:
            error = Unauthorized("missing or invalid API key (Authorization: Bearer <key>)")
            error.headers["WWW-Authenticate"] = 'Bearer realm="sentiment"'
            response = service_error_response(Request(scope, receive), error)
            response.headers["Connection"] = "close"  # the body was not read
            return await response(scope, receive, send)
        scope.setdefault("state", {})["key_id"] = ident
        await self.app(scope, receive, send)


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _bearer(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            # UTF-8, as curl and the keys file write a non-ASCII key (ASGI gives raw bytes).
            scheme, _, token = value.decode("utf-8", "replace").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""
