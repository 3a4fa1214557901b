"""Where the fast encoder runs: on the event loop when that is cheaper than a thread.

The Python path holds the GIL whatever thread runs it, so for a request of modest size a
thread only adds hand-offs (and its temporaries land in another malloc arena). Larger
requests, text that is costly per character (non-ASCII), and the Rust remainder (which
releases the GIL) go to a worker thread. The reference placement is ``Encoder.encode_async``:
always a thread (``SENTIMENT_ENCODE_ON_LOOP=false``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from sentiment_core.encoder import Encoded

if TYPE_CHECKING:
    from service.encoding.python_path import PythonPathEncoder

# Bounds on the loop's time per request (docs/performance.md, "Encoding placement").
INLINE_CHARS = 131_072
INLINE_NON_ASCII_CHARS = 32_768
INLINE_RUST_CHARS = 16_384


async def encode_on_loop(
    encoder: PythonPathEncoder, texts: Sequence[str], with_tokens: bool
) -> list[Encoded]:
    one = len(texts) == 1
    if not one and (
        sum(map(len, texts)) > INLINE_CHARS
        or sum(len(t) for t in texts if not t.isascii()) > INLINE_NON_ASCII_CHARS
    ):
        return await run_in_threadpool(encoder.encode, texts, with_tokens)
    out, rust = encoder.encode_python_path(texts, with_tokens)
    if rust:
        if one or sum(len(texts[i]) for i in rust) <= INLINE_RUST_CHARS:
            encoder.encode_rust_path(texts, rust, out, with_tokens)
        else:
            await run_in_threadpool(encoder.encode_rust_path, texts, rust, out, with_tokens)
    return out  # type: ignore[return-value]
