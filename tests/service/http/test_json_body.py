"""``json_body.decoded``: every gzip member, in bounded steps, with the same refusals."""

from __future__ import annotations

import gzip
import os
import zlib

import pytest

from service.errors import InvalidInput, PayloadTooLarge
from service.http.json_body import _FEED_BYTES, MAX_GZIP_MEMBERS, decoded

LIMIT = 4 * 1024 * 1024


def test_many_tiny_members_make_one_body():
    """A member per byte (the shape that was quadratic) inflates to the text as sent."""
    raw = b'{"texts": ["' + b"good film " * 100 + b'"]}'
    body = b"".join(gzip.compress(raw[i : i + 1], mtime=0) for i in range(len(raw)))
    assert len(raw) <= MAX_GZIP_MEMBERS
    assert decoded(body, "gzip", LIMIT) == raw


def test_more_members_than_writers_make_are_refused():
    body = gzip.compress(b"", mtime=0) * 200_000
    with pytest.raises(InvalidInput, match=f"more than {MAX_GZIP_MEMBERS} gzip members"):
        decoded(body, "gzip", LIMIT)
    assert decoded(gzip.compress(b"", mtime=0) * MAX_GZIP_MEMBERS, "gzip", LIMIT) == b""


def test_members_larger_than_a_feed_step_and_across_its_boundaries():
    incompressible = os.urandom(3 * _FEED_BYTES)  # each member's data spans several steps
    body = gzip.compress(incompressible) + gzip.compress(b"tail") + gzip.compress(incompressible)
    assert decoded(body, "gzip", LIMIT) == incompressible + b"tail" + incompressible


@pytest.mark.parametrize("cut", [1, 8, _FEED_BYTES])
def test_a_member_cut_short_is_refused(cut):
    body = gzip.compress(os.urandom(2 * _FEED_BYTES))[:-cut]
    with pytest.raises(InvalidInput, match="ends too soon"):
        decoded(body, "gzip", LIMIT)


def test_bytes_after_deflate_data_are_counted_and_refused():
    with pytest.raises(InvalidInput, match="has 7 bytes after its deflate data"):
        decoded(zlib.compress(b"{}") + b"GARBAGE", "deflate", LIMIT)


def test_garbage_after_a_gzip_member_is_refused():
    with pytest.raises(InvalidInput, match="not valid gzip"):
        decoded(gzip.compress(b"{}") + b"GARBAGE", "gzip", LIMIT)


def test_the_limit_holds_across_members():
    member = gzip.compress(b" " * 1000)
    assert len(decoded(member * 4, "gzip", 4000)) == 4000
    with pytest.raises(PayloadTooLarge, match="exceeds 3999 bytes"):
        decoded(member * 4, "gzip", 3999)
