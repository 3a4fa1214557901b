"""Where the fast encoder runs: on the event loop when that is cheaper than a thread.

The Python path holds the GIL whatever thread runs it, so for a request of modest size a
thread only adds two hand-offs, which for a one-sentence request cost more than encoding
it. A large request, or one with much non-ASCII text (costlier per character, and it may
need the Rust tokenizer), goes to a worker thread so that the loop never stalls for long.
The reference placement is ``Encoder.encode_async``: always a thread
(``SENTIMENT_ENCODE_ON_LOOP=false``). Measurements: docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from sentiment_core.encoder import Encoded

if TYPE_CHECKING:
    from service.encoding.python_path import PythonPathEncoder

# The loop encodes a request of at most this much text itself (a few ms at most).
INLINE_CHARS = 131_072
INLINE_NON_ASCII_CHARS = 32_768


async def encode_on_loop(
    encoder: PythonPathEncoder, texts: Sequence[str], with_tokens: bool
) -> list[Encoded]:
    if fits_inline(texts):
        return encoder.encode(texts, with_tokens)
    return await run_in_threadpool(encoder.encode, texts, with_tokens)


def fits_inline(texts: Sequence[str]) -> bool:
    return (
        sum(map(len, texts)) <= INLINE_CHARS
        and sum(len(t) for t in texts if not t.isascii()) <= INLINE_NON_ASCII_CHARS
    )
