"""How a JSON request body is read: its Content-Encoding, and keys that appear twice.

Every JSON route (and /v2, which reads its body itself) takes bodies compressed with gzip
or deflate, inflated to at most ``SENTIMENT_MAX_BODY_BYTES``; any other encoding is a 415.
A key given twice in one object is refused (422, or 400 on /v2): Python's ``json`` and
pydantic both keep the last value, so ``{"texts": [a], "texts": [b, c]}`` would score b
and c and drop a without a word.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from service.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

_WBITS = {"gzip": 31, "deflate": 15}  # zlib's wbits for each Content-Encoding
_FEED_BYTES = 64 * 1024
# More than real writers make (``cat``; bgzip's blocks of a body at its size limit); each
# member costs a zlib object, and many empty ones cost the event loop (docs/security.md).
MAX_GZIP_MEMBERS = 1024
DUPLICATE_KEY = "appears twice in one object (give each key once)"


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: the object, or a JSONDecodeError naming
    the first key given twice."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        message = f"key {twice[:100]!r} {DUPLICATE_KEY}"
        raise json.JSONDecodeError(message, "", 0)
    return obj


def duplicate_key(body: bytes | str) -> str | None:
    """What is wrong with a body already parsed as valid JSON elsewhere, or None."""
    try:
        json.loads(body, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        return exc.msg
    except (ValueError, RecursionError):
        return None  # not ours to judge: the parser that accepted it answers as it did
    return None


def may_repeat_a_key(body: bytes, quoted_keys: tuple[bytes, ...]) -> bool:
    """False only when ``body``, valid JSON for a flat object with no keys but these (as
    ``b'"text"'``), cannot give one twice: a key is written as its quoted name, or with
    ``\\u`` escapes. ``bytes.count`` is far cheaper than ``duplicate_key``'s parse."""
    return b"\\u" in body or max(map(body.count, quoted_keys)) > 1


def decoded(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body without its Content-Encoding; never more than ``limit`` bytes, however well
    it was compressed. Every gzip member is read (``gzip`` may concatenate them); data cut
    short or followed by bytes that are not another member is refused."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in _WBITS:
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding[:40]!r} is not supported (gzip, deflate or none)"
        )
    out = bytearray()
    view, at = memoryview(body), 0
    for _ in range(MAX_GZIP_MEMBERS):
        at = _inflate_member(view, at, _WBITS[encoding], out, limit, encoding)
        if at == len(view):
            return bytes(out)
        if encoding != "gzip":
            raise InvalidInput(f"body has {len(view) - at} bytes after its {encoding} data")
    raise InvalidInput(f"body has more than {MAX_GZIP_MEMBERS} gzip members")


def _inflate_member(
    view: memoryview, at: int, wbits: int, out: bytearray, limit: int, encoding: str
) -> int:
    """Inflate the member starting at ``view[at]`` into ``out``; where the next one starts.

    Fed ``_FEED_BYTES`` at a time: zlib copies the input left after a member into
    ``unused_data``, so feeding the whole body made a body of many tiny members quadratic
    (docs/security.md)."""
    inflater = zlib.decompressobj(wbits=wbits)
    while not inflater.eof:
        if at == len(view):
            raise InvalidInput(f"body is not valid {encoding} data (it ends too soon)")
        chunk = view[at : at + _FEED_BYTES]
        try:
            out += inflater.decompress(chunk, limit + 1 - len(out))
        except zlib.error as exc:
            raise InvalidInput(f"body is not valid {encoding} data ({exc})") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(
                f"decompressed body exceeds {limit} bytes (SENTIMENT_MAX_BODY_BYTES)"
            )
        at += len(chunk) - len(inflater.unused_data)
    return at


class StrictJsonRequest(Request):
    """A request whose JSON refuses keys given twice, and whose body is inflated first."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), object_pairs_hook=unique_keys)
        return self._json

    async def inflate(self) -> None:
        """Replace a compressed body by its content (an error is the route's answer)."""
        encoding = self.headers.get("content-encoding")
        if encoding is not None and (body := await self.body()):
            self._body = decoded(body, encoding, self.app.state.settings.max_body_bytes)


class StrictJsonRoute(APIRoute):
    """FastAPI's route, reading bodies as ``StrictJsonRequest`` (FastAPI turns the
    JSONDecodeError for a key given twice into its usual invalid-JSON 422)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:  # GET routes: a body there is not read at all
            return handler

        async def strict(request: Request) -> Response:
            request = StrictJsonRequest(request.scope, request.receive)
            await request.inflate()
            return await handler(request)

        return strict
