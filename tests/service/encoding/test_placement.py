"""Where a request's texts are encoded (service/encoding/placement.py): on the event loop,
or (large requests) in a thread; switched off, always in a thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import service.encoding.placement as placement
from service.encoding.python_path import PythonPathEncoder

# Characters the Python path hands to Rust: a C0 control code (the service refuses it,
# the encoder does not), so these texts always take the Rust path.
RUST_TEXT = "needs rust \x0b " + "plain words here " * 60
PYTHON_TEXT = "a plain review, don't you think? " * 40
ACCENTED_TEXT = "a café review, naïve but fine " * 40  # non-ASCII, folded by Python


@pytest.fixture
def fast(encoder) -> PythonPathEncoder:
    return PythonPathEncoder(encoder)


@pytest.fixture
def where_encoded(fast, monkeypatch):
    """Runs ``fast.encode_async`` and tells which threads ran ``encode``."""
    seen: set[str] = set()
    original = fast.encode

    def spy(texts, with_tokens=True):
        seen.add(threading.current_thread().name)
        return original(texts, with_tokens)

    monkeypatch.setattr(fast, "encode", spy)

    async def run(texts):
        seen.clear()
        got = await fast.encode_async(texts, with_tokens=False)
        return got, set(seen)

    return run


def _same(got, want) -> bool:
    return [(list(e.ids), e.truncated, e.unknown_tokens) for e in got] == [
        (list(e.ids), e.truncated, e.unknown_tokens) for e in want
    ]


async def test_a_modest_request_is_encoded_on_the_loop(where_encoded, encoder):
    texts = [PYTHON_TEXT] * 30 + [ACCENTED_TEXT] * 5  # ~45k characters, 6k not ASCII
    got, seen = await where_encoded(texts)
    assert seen == {threading.current_thread().name}
    assert _same(got, encoder.encode(texts, with_tokens=False))
    assert isinstance(got[0].ids, np.ndarray)  # (the vocab table's, from the loop)


async def test_texts_for_the_rust_tokenizer_stay_on_the_loop_within_the_bounds(
    where_encoded, encoder
):
    texts = [PYTHON_TEXT] * 10 + [RUST_TEXT]
    got, seen = await where_encoded(texts)
    assert seen == {threading.current_thread().name}
    assert _same(got, encoder.encode(texts, with_tokens=False))


async def test_a_request_over_the_inline_limit_is_encoded_in_a_thread(where_encoded, encoder):
    texts = [PYTHON_TEXT] * (placement.INLINE_CHARS // len(PYTHON_TEXT) + 1)
    got, seen = await where_encoded(texts)
    assert seen and threading.current_thread().name not in seen
    assert _same(got, encoder.encode(texts, with_tokens=False))


async def test_much_text_that_is_not_ascii_is_encoded_in_a_thread(where_encoded, encoder):
    """Non-ASCII text costs more per character: over the smaller limit, off the loop."""
    texts = [ACCENTED_TEXT] * 30  # ~36k characters, no text of them ASCII
    assert sum(map(len, texts)) > placement.INLINE_NON_ASCII_CHARS
    got, seen = await where_encoded(texts)
    assert seen and threading.current_thread().name not in seen
    assert _same(got, encoder.encode(texts, with_tokens=False))


async def test_switched_off_every_request_is_encoded_in_a_thread(encoder):
    """``SENTIMENT_ENCODE_ON_LOOP=false``: the reference placement, whatever the size."""
    off = PythonPathEncoder(encoder, on_loop=False)
    seen: list[str] = []
    original = off.encode
    off.encode = lambda texts, with_tokens=True: (
        seen.append(  # type: ignore[method-assign]
            threading.current_thread().name
        )
        or original(texts, with_tokens)
    )
    got = await off.encode_async([PYTHON_TEXT], with_tokens=False)
    assert seen and threading.current_thread().name not in seen
    assert _same(got, encoder.encode([PYTHON_TEXT], with_tokens=False))
