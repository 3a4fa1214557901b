"""The body read deadline (BodyLimitMiddleware's BodyDeadlines), in-process: a read that
waits too long raises BodyTimeout; a quick one, or any other cancellation, is untouched.
The live-server behaviour (408 on the wire, the connection closed) is in tests/service/test_cli.py."""

from __future__ import annotations

import asyncio

import pytest

from service.errors import BodyTimeout
from service.http.body import BodyDeadlines


def channel():
    """An ASGI ``receive`` fed by a queue (what a client has sent so far)."""
    queue: asyncio.Queue = asyncio.Queue()
    return queue, queue.get


async def test_a_read_that_gets_its_part_in_time_is_untouched():
    deadlines = BodyDeadlines(0.2)
    queue, receive = channel()
    queue.put_nowait({"type": "http.request", "body": b"{}", "more_body": False})
    timed = deadlines.timed(receive)
    assert (await timed())["body"] == b"{}"
    assert not deadlines.waiting
    # the body has ended: a later read (waiting for a disconnect) has no deadline
    later = asyncio.create_task(timed())
    await asyncio.sleep(0.4)
    assert not later.done()
    queue.put_nowait({"type": "http.disconnect"})
    assert (await later)["type"] == "http.disconnect"


async def test_a_stalled_read_raises_body_timeout_within_the_sweep():
    deadlines = BodyDeadlines(0.2)
    queue, receive = channel()
    timed = deadlines.timed(receive)
    queue.put_nowait({"type": "http.request", "body": b"x" * 10, "more_body": True})
    await timed()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BodyTimeout, match=r"10 bytes received, then nothing for 0\.2 s"):
        await timed()
    assert 0.2 <= loop.time() - started < 0.5  # within 1.25 x the timeout, plus slack
    assert not deadlines.waiting and not deadlines.expired
    assert asyncio.current_task().cancelling() == 0  # the cancellation was taken back


async def test_only_the_stalled_reader_is_cancelled_and_others_cancel_as_usual():
    deadlines = BodyDeadlines(0.2)
    queue, receive = channel()
    stalled = asyncio.create_task(deadlines.timed(channel()[1])())
    quick = asyncio.create_task(deadlines.timed(receive)())
    cancelled = asyncio.create_task(deadlines.timed(channel()[1])())
    await asyncio.sleep(0.05)
    queue.put_nowait({"type": "http.request", "body": b"x", "more_body": False})
    cancelled.cancel()  # e.g. the server's own cancellation: not a body timeout
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert (await quick)["body"] == b"x"
    with pytest.raises(BodyTimeout):
        await stalled
    assert not deadlines.waiting


async def test_zero_turns_the_deadline_off():
    from service.http.body import BodyLimitMiddleware

    seen = []

    async def app(scope, receive, send):
        seen.append(receive)

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    scope = {"type": "http", "headers": [(b"content-length", b"2")]}
    await BodyLimitMiddleware(app, max_bytes=1024, timeout_s=0)(scope, receive, None)
    await BodyLimitMiddleware(app, max_bytes=1024, timeout_s=5)(scope, receive, None)
    assert seen[0] is receive and seen[1] is not receive  # off: the server's own receive


async def feed(queue: asyncio.Queue, parts: int, size: int, every_s: float) -> None:
    for i in range(parts):
        await asyncio.sleep(every_s)
        more = i < parts - 1
        queue.put_nowait({"type": "http.request", "body": b"x" * size, "more_body": more})


async def test_a_body_that_trickles_in_is_cut_by_the_pace_deadline():
    """Each part comes well within the timeout, but the body as a whole too slowly."""
    deadlines = BodyDeadlines(0.2)
    queue, receive = channel()
    timed = deadlines.timed(receive)
    sender = asyncio.create_task(feed(queue, 100, 1, 0.05))
    with pytest.raises(BodyTimeout, match=r"arrives too slowly: \d+ bytes in \d+ s"):
        while (await timed())["more_body"]:
            pass
    sender.cancel()
    assert not deadlines.waiting


async def test_a_body_arriving_faster_than_the_minimum_pace_is_read_whole():
    deadlines = BodyDeadlines(0.2)
    queue, receive = channel()
    timed = deadlines.timed(receive)
    sender = asyncio.create_task(feed(queue, 30, 16 * 1024, 0.02))  # 800 KiB/s for 0.6 s
    received = 0
    while True:
        message = await timed()
        received += len(message["body"])
        if not message["more_body"]:
            break
    await sender
    assert received == 30 * 16 * 1024
