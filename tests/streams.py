"""Test streams that produce a lot of data without holding it, a memory meter, and a pipe
that is full."""

from __future__ import annotations

import contextlib
import os
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from aggregator.limits import READ_CHUNK_BYTES
from aggregator.supervision.reader import LineReader
from aggregator.supervision.stderr import StderrCapture


class RepeatingStream(trio.abc.ReceiveStream):
    """`total` bytes of `pattern` repeated, then `tail`, then end of stream.

    Nothing is kept: each chunk is cut from `pattern` when asked for (or is `pattern`
    itself), so tracemalloc sees what a reader keeps plus at most one chunk in flight.
    """

    def __init__(self, pattern: bytes, total: int, tail: bytes = b"") -> None:
        self.pattern = pattern
        self.left = total
        self.tail = tail
        self.offset = 0  # where in `pattern` the next chunk starts
        self.delivered = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        if self.left <= 0:
            data, self.tail = self.tail, b""
        else:
            size = min(len(self.pattern) - self.offset, self.left,
                       max_bytes or len(self.pattern))
            if size == len(self.pattern):
                data = self.pattern
            else:
                data = self.pattern[self.offset:self.offset + size]
            self.offset = (self.offset + size) % len(self.pattern)
            self.left -= size
        self.delivered += len(data)
        return data

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Peak bytes allocated (by Python) inside the block, put into the yielded list."""
    peak: list[int] = []
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1] - base)
        tracemalloc.stop()


def pipe_streams() -> tuple[trio.lowlevel.FdStream, trio.lowlevel.FdStream]:
    """(read end, write end) of an OS pipe, as trio streams."""
    r, w = os.pipe()
    return trio.lowlevel.FdStream(r), trio.lowlevel.FdStream(w)


async def next_line(reader: LineReader) -> bytes | None:
    """The next line, or None at a clean end: the reader's primitives (pop_line, receive,
    leftover), driven the way the supervised call drives them, without its deadlines."""
    while True:
        line = reader.pop_line()
        if line is not None:
            return line
        if reader.at_eof:
            partial = reader.leftover()
            if partial is not None:
                raise partial
            return None
        await reader.receive()


async def drain(capture: StderrCapture, stream: trio.abc.ReceiveStream) -> None:
    """Everything from `stream` into `capture`, chunk by chunk, as the supervised call feeds it."""
    while chunk := await stream.receive_some(READ_CHUNK_BYTES):
        capture.feed(chunk)


def full_pipe(*, blocking: bool = True) -> tuple[int, int, int]:
    """A pipe whose reader is busy elsewhere (servo, posting a progress line): its read
    end, its write end (blocking or not, as servo may hand it over) and the bytes already
    in it, which that reader has not read yet."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    junk = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            junk += os.write(write_end, b"x" * 4096)
    os.set_blocking(write_end, blocking)
    return read_end, write_end, junk
