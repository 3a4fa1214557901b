"""The encoder interface the predict pipeline calls, with the reference implementation.

``Encoder`` wraps the reference encoder (sentiment_core: the Rust ``tokenizers``
pipeline) and runs it in a worker thread, off the event loop. The faster encoder in
``python_path`` implements the same interface and is tested equal to it.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool

from sentiment_core.encoder import Encoded, TextEncoder


class Encoder:
    """Texts to ``Encoded``: ``encode`` anywhere, ``encode_async`` from the event loop."""

    def __init__(self, reference: TextEncoder):
        self.reference = reference

    @property
    def max_length(self) -> int:
        return self.reference.max_length

    @property
    def vocab_size(self) -> int:
        return self.reference.vocab_size

    def encode(self, texts: Sequence[str], with_tokens: bool = True) -> list[Encoded]:
        return self.reference.encode(texts, with_tokens)

    def encode_ids(self, texts: Sequence[str]) -> list[Sequence[int]]:
        return [e.ids for e in self.encode(texts, with_tokens=False)]

    async def encode_async(self, texts: Sequence[str], with_tokens: bool) -> list[Encoded]:
        # The Rust tokenizer releases the GIL: a thread keeps the loop serving meanwhile.
        return await run_in_threadpool(self.encode, texts, with_tokens)
