"""Where a request's texts are encoded (service/encoding/placement.py): on the event loop,
or (the Rust part, large requests) in a thread; switched off, always in a thread."""

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
    """Runs ``fast.encode_async`` and tells which thread ran each half of the encoder."""
    encoder = fast
    seen: dict[str, set[str]] = {"python": set(), "rust": set(), "whole": set()}

    def spy(name, method):
        def wrapper(*args, **kwargs):
            seen[name].add(threading.current_thread().name)
            return method(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(encoder, "encode_python_path", spy("python", encoder.encode_python_path))
    monkeypatch.setattr(encoder, "encode_rust_path", spy("rust", encoder.encode_rust_path))
    monkeypatch.setattr(encoder, "encode", spy("whole", encoder.encode))

    async def run(texts):
        for name in seen:
            seen[name].clear()
        got = await encoder.encode_async(texts, with_tokens=False)
        return got, {name: threads for name, threads in seen.items() if threads}

    return run


def _same(got, want) -> bool:
    return [(list(e.ids), e.truncated, e.unknown_tokens) for e in got] == [
        (list(e.ids), e.truncated, e.unknown_tokens) for e in want
    ]


async def test_python_path_texts_are_encoded_on_the_loop(where_encoded, encoder):
    texts = [PYTHON_TEXT] * 30 + [ACCENTED_TEXT] * 5  # ~45k characters, 6k not ASCII
    got, seen = await where_encoded(texts)
    assert seen == {"python": {threading.current_thread().name}}
    assert _same(got, encoder.encode(texts, with_tokens=False))


async def test_a_large_rust_part_goes_to_a_thread_and_the_rest_stays(where_encoded, encoder):
    texts = [PYTHON_TEXT, RUST_TEXT] * 20  # the Rust part alone is over the inline limit
    assert sum(len(t) for t in texts[1::2]) > placement.INLINE_RUST_CHARS
    got, seen = await where_encoded(texts)
    loop_thread = threading.current_thread().name
    assert seen["python"] == {loop_thread}
    assert seen["rust"] and loop_thread not in seen["rust"]
    assert _same(got, encoder.encode(texts, with_tokens=False))
    assert isinstance(got[0].ids, np.ndarray)  # (the vocab table's, from the loop)


async def test_a_small_rust_part_stays_on_the_loop(where_encoded, encoder):
    texts = [PYTHON_TEXT] * 10 + [RUST_TEXT]
    got, seen = await where_encoded(texts)
    assert seen["rust"] == {threading.current_thread().name}
    assert _same(got, encoder.encode(texts, with_tokens=False))


async def test_a_request_over_the_inline_limit_is_encoded_in_a_thread(where_encoded, encoder):
    texts = [PYTHON_TEXT] * (placement.INLINE_CHARS // len(PYTHON_TEXT) + 1)
    got, seen = await where_encoded(texts)
    assert seen["whole"] and threading.current_thread().name not in seen["whole"]
    assert _same(got, encoder.encode(texts, with_tokens=False))


async def test_much_text_that_is_not_ascii_is_encoded_in_a_thread(where_encoded, encoder):
    """Folding costs more per character than ASCII: over the smaller limit, off the loop."""
    texts = [ACCENTED_TEXT] * 30  # ~36k characters, no text of them ASCII
    assert sum(map(len, texts)) > placement.INLINE_NON_ASCII_CHARS
    got, seen = await where_encoded(texts)
    assert seen["whole"] and threading.current_thread().name not in seen["whole"]
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
