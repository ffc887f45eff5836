"""The line reader's non-waiting side, which lets supervision take a burst of lines under
one deadline and read whatever a driver wrote before it exited."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from aggregator.supervision.reader import LineReader, LineTooLong
from tests.streams import next_line


async def reader_with(data: bytes, max_line: int = 1024) -> tuple[LineReader, trio.abc.SendStream]:
    send, receive = trio.testing.memory_stream_one_way_pair()
    await send.send_all(data)
    return LineReader(receive, max_line), send


async def test_pop_line_hands_out_buffered_lines_without_waiting() -> None:
    reader, _ = await reader_with(b"one\ntwo\nthr")
    assert reader.pop_line() is None  # nothing read yet: it never waits for the stream
    assert await next_line(reader) == b"one"
    assert reader.pop_line() == b"two"
    assert reader.pop_line() is None  # "thr" is not a whole line
    assert reader.received == len(b"one\ntwo\nthr")


async def test_leftover_is_the_unfinished_line() -> None:
    reader, _ = await reader_with(b"whole\nhalf a li")
    assert await next_line(reader) == b"whole"
    assert reader.pop_line() is None
    partial = reader.leftover()
    assert partial is not None and partial.fragment == b"half a li" and partial.size == 9
    done, _ = await reader_with(b"whole\n")
    assert await next_line(done) == b"whole"
    assert done.leftover() is None


async def test_pop_line_enforces_the_length_limit() -> None:
    reader, _ = await reader_with(b"x" * 2000, max_line=1024)
    with pytest.raises(LineTooLong):
        await next_line(reader)
    reader, _ = await reader_with(b"ok\n" + b"x" * 2000 + b"\n", max_line=1024)
    assert await next_line(reader) == b"ok"
    with pytest.raises(LineTooLong):
        reader.pop_line()  # the over-long line is already buffered, newline and all


async def test_received_counts_every_byte_taken_from_the_stream() -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    reader = LineReader(receive)
    for part in (b"a\n", b"bb\n", b"ccc\n"):
        await send.send_all(part)
        await next_line(reader)
    assert reader.received == 9
