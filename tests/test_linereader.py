"""The bounded line reader: whole lines, a hard length limit, and memory that never grows;
and its non-waiting side, which lets supervision take a burst of lines under one deadline
and read whatever a driver wrote before it exited."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from aggregator.limits import MAX_LINE_BYTES, MAX_RESULT_LINE_BYTES, READ_CHUNK_BYTES
from aggregator.supervision.reader import LineReader, LineTooLong, PartialLastLine
from tests.streams import RepeatingStream, next_line, peak_memory, pipe_streams

pytestmark = pytest.mark.unit


async def read_all(reader: LineReader) -> list[bytes]:
    lines = []
    while (line := await next_line(reader)) is not None:
        lines.append(line)
    return lines


async def reader_over(*sends: bytes, max_line: int = MAX_LINE_BYTES) -> LineReader:
    send, receive = trio.testing.memory_stream_one_way_pair()
    for data in sends:
        await send.send_all(data)
    await send.aclose()
    return LineReader(receive, max_line)


async def reader_left_open(data: bytes, max_line: int = MAX_LINE_BYTES
                           ) -> tuple[LineReader, trio.abc.SendStream]:
    """A reader over `data` on a stream that has not ended (nothing may wait for its end)."""
    send, receive = trio.testing.memory_stream_one_way_pair()
    await send.send_all(data)
    return LineReader(receive, max_line), send


async def test_lines_come_whole_without_the_newline() -> None:
    reader = await reader_over(b'{"a": 1}\n\n{"b"', b': 2}\nlast\r\n')
    assert await read_all(reader) == [b'{"a": 1}', b"", b'{"b": 2}', b"last\r"]


async def test_end_of_stream_is_none_and_stays_none() -> None:
    reader = await reader_over(b"one\n")
    assert await next_line(reader) == b"one"
    assert await next_line(reader) is None
    assert await next_line(reader) is None


async def test_a_line_split_into_single_bytes_is_put_back_together() -> None:
    data = b'{"progress": 50, "message": "half"}\n' * 3
    reader = await reader_over(*(data[i:i + 1] for i in range(len(data))))
    assert await read_all(reader) == [b'{"progress": 50, "message": "half"}'] * 3


async def test_many_lines_in_one_chunk() -> None:
    reader = await reader_over(b"".join(b"%d\n" % i for i in range(10_000)))
    assert await read_all(reader) == [b"%d" % i for i in range(10_000)]


async def test_partial_last_line_is_an_error_with_its_start() -> None:
    reader = await reader_over(b"whole\n", b"half a li", b"ne" + b"x" * 500)
    assert await next_line(reader) == b"whole"
    with pytest.raises(PartialLastLine) as caught:
        await next_line(reader)
    assert caught.value.fragment == (b"half a line" + b"x" * 500)[:200]
    assert caught.value.size == 511
    assert "inside a line of 511 bytes" in str(caught.value)


async def test_a_line_of_exactly_the_limit_is_accepted() -> None:
    reader = await reader_over(b"x" * 1000 + b"\n", max_line=1000)
    assert await next_line(reader) == b"x" * 1000


@pytest.mark.parametrize("split", [None, 999, 1000, 1001])
async def test_one_byte_over_the_limit_is_refused_however_it_arrives(
        split: int | None) -> None:
    data = b"x" * 1001 + b"\n"
    sends = [data] if split is None else [data[:split], data[split:]]
    reader = await reader_over(*sends, max_line=1000)
    with pytest.raises(LineTooLong, match="longer than 1000 bytes"):
        await next_line(reader)


async def test_the_default_limit_is_1_mib() -> None:
    assert MAX_LINE_BYTES == 1024 * 1024
    exact = RepeatingStream(b"x" * 4096, MAX_LINE_BYTES, tail=b"\n")
    assert await next_line(LineReader(exact)) == b"x" * MAX_LINE_BYTES
    over = RepeatingStream(b"x" * 4096, MAX_LINE_BYTES + 1, tail=b"\n")
    with pytest.raises(LineTooLong):
        await next_line(LineReader(over))


async def test_a_1_mib_plus_1_line_arriving_in_one_write_is_refused() -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    await send.send_all(b"y" * (MAX_LINE_BYTES + 1) + b"\n")
    await send.aclose()
    with pytest.raises(LineTooLong):
        await next_line(LineReader(receive))


async def test_a_line_that_never_ends_is_refused_after_reading_about_the_limit() -> None:
    endless = RepeatingStream(b"z" * READ_CHUNK_BYTES, 1 << 40)  # a terabyte, never sent
    with pytest.raises(LineTooLong):
        await next_line(LineReader(endless))
    assert endless.delivered <= MAX_LINE_BYTES + 2 * READ_CHUNK_BYTES


async def test_hundreds_of_megabytes_of_lines_in_bounded_memory() -> None:
    line = b'{"progress": 1, "message": "' + b"m" * 4000 + b'"}\n'
    pattern = line * (READ_CHUNK_BYTES // len(line)) + line[:1234]  # lines straddle chunks
    total = 256 * 1024 * 1024
    stream = RepeatingStream(pattern, total)
    reader = LineReader(stream)
    count = 0
    with peak_memory() as peak:
        try:
            while await next_line(reader) is not None:
                count += 1
        except PartialLastLine:
            pass  # the pattern does not end on a newline; only the last fragment is cut
    assert stream.delivered == total
    assert count > total // len(line) - 2 * (total // len(pattern)) - 2
    assert peak[0] < 4 * READ_CHUNK_BYTES, peak


async def test_long_lines_near_the_limit_cost_about_one_line_of_memory() -> None:
    line = b"q" * (MAX_LINE_BYTES - 1) + b"\n"
    stream = RepeatingStream(line, 100 * len(line))
    reader = LineReader(stream)
    with peak_memory() as peak:
        lines = 0
        while (got := await next_line(reader)) is not None:
            assert len(got) == MAX_LINE_BYTES - 1
            lines += 1
    assert lines == 100
    # 100 MiB went through; a few line-sized buffers (the reader's, the line handed out,
    # the caller's previous one, a reallocation) is all that was ever held.
    assert peak[0] < 6 * MAX_LINE_BYTES, peak


async def test_through_an_os_pipe() -> None:
    receive, send = pipe_streams()
    line = b"p" * 999 + b"\n"
    total_lines = 32 * 1024  # 32 MiB through the kernel's 64 KiB pipe buffer

    async def writer() -> None:
        async with send:
            for _ in range(total_lines // 64):
                await send.send_all(line * 64)

    async with receive, trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        got = await read_all(LineReader(receive))
    assert len(got) == total_lines
    assert set(got) == {b"p" * 999}


# -- the non-waiting side ---------------------------------------------------------------

async def test_pop_line_hands_out_buffered_lines_without_waiting() -> None:
    reader, _ = await reader_left_open(b"one\ntwo\nthree")
    assert reader.pop_line() is None  # nothing read yet: it never waits for the stream
    assert await next_line(reader) == b"one"
    assert reader.pop_line() == b"two"
    assert reader.pop_line() is None  # "three" is not a whole line
    assert reader.received == len(b"one\ntwo\nthree")
    leftover = reader.leftover()
    assert leftover is not None and leftover.fragment == b"three" and leftover.size == 5


async def test_leftover_is_the_unfinished_line_and_none_after_whole_lines() -> None:
    reader, _ = await reader_left_open(b"whole\nhalf a li")
    assert await next_line(reader) == b"whole"
    assert reader.pop_line() is None
    partial = reader.leftover()
    assert partial is not None and partial.fragment == b"half a li" and partial.size == 9
    done = await reader_over(b"one\n")
    assert await next_line(done) == b"one"
    assert done.leftover() is None


async def test_pop_line_enforces_the_length_limit() -> None:
    reader, _ = await reader_left_open(b"x" * 2000, max_line=1024)
    with pytest.raises(LineTooLong):
        await next_line(reader)  # no newline yet, and the stream has not ended
    reader = await reader_over(b"ok\n" + b"x" * 1001 + b"\n", max_line=1000)
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


async def test_a_descriptor_line_is_copied_once_on_its_way_out() -> None:
    """A --query reader takes lines up to MAX_RESULT_LINE_BYTES: one of 32 MiB costs its
    buffer and the line handed out, no third copy."""
    size = 32 * MAX_LINE_BYTES
    stream = RepeatingStream(b"x" * 4096, size, tail=b"\n")
    reader = LineReader(stream, MAX_RESULT_LINE_BYTES)
    with peak_memory() as peak:
        line = await next_line(reader)
        assert line is not None and len(line) == size
        del line
    assert peak[0] < 2.3 * size, peak


class Chunked(trio.abc.ReceiveStream):
    """`data` handed out in the given chunk sizes (cycled), as a pipe might."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self._data, self._sizes, self._at, self._turn = data, sizes, 0, 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        size = self._sizes[self._turn % len(self._sizes)]
        self._turn += 1
        chunk = self._data[self._at:self._at + size]
        self._at += len(chunk)
        return chunk

    async def aclose(self) -> None:
        pass


@given(st.binary(max_size=200).map(lambda b: b.replace(b"\x00", b"\n")),
       st.lists(st.integers(1, 40), min_size=1, max_size=5), st.integers(0, 12))
async def test_any_chunking_yields_the_lines_of_the_data_in_order(
        data: bytes, sizes: list[int], max_line: int) -> None:
    """Lines as data.split would give them, however the stream cuts the data; the first
    line over the limit (whole or unfinished) ends it with LineTooLong, an unfinished last
    line within the limit with PartialLastLine."""
    *whole, tail = data.split(b"\n")
    expected: list[bytes] = []
    ending: type[Exception] | None = None
    for part in whole:
        if len(part) > max_line:
            ending = LineTooLong
            break
        expected.append(part)
    else:
        if len(tail) > max_line:
            ending = LineTooLong
        elif tail:
            ending = PartialLastLine
    reader = LineReader(Chunked(data, sizes), max_line)
    got: list[bytes] = []
    try:
        while (line := await next_line(reader)) is not None:
            got.append(line)
    except (LineTooLong, PartialLastLine) as exc:
        assert type(exc) is ending
    else:
        assert ending is None
    assert got == expected
    assert reader.received <= len(data)
