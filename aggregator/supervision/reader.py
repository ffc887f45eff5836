"""Newline-delimited reading with a hard cap on line length (trio has no readline)."""

from __future__ import annotations

import trio

from aggregator.limits import MAX_LINE_BYTES, READ_CHUNK_BYTES


class LineTooLong(Exception):
    """A line grew past the limit: the writer is not speaking the protocol."""


class PartialLastLine(Exception):
    """The stream ended in the middle of a line."""

    def __init__(self, fragment: bytes, size: int | None = None) -> None:
        self.size = len(fragment) if size is None else size  # the whole partial line
        super().__init__(f"stream ended inside a line of {self.size} bytes")
        self.fragment = fragment  # its start, for the error message


class LineReader:
    """Yields whole lines (without the newline); memory never exceeds the limit plus a chunk.

    Each chunk is split into lines once, as it arrives (one C call for a chunk of dozens
    of lines, instead of a search, a copy and a shift of the buffer per line): a flood's
    lines cost a list pop each.
    """

    def __init__(self, stream: trio.abc.ReceiveStream, max_line: int = MAX_LINE_BYTES) -> None:
        self._stream = stream
        self._max_line = max_line
        self._lines: list[bytes] = []  # whole lines not handed out yet, the next one last
        self._partial = bytearray()  # the unfinished line after them (no newline in it)
        self._eof = False
        self.received = 0  # bytes taken from the stream so far

    def pop_line(self) -> bytes | None:
        """A whole line that is already buffered, without waiting; None if there is none.

        Lets a caller handle a burst of lines with one timeout, not one per line.
        """
        return None if self.next_size() is None else self.take_line()

    def next_size(self) -> int | None:
        """The length of the next whole line already buffered, without taking it (None if
        there is none); raises LineTooLong as pop_line would."""
        if self._lines:
            size = len(self._lines[-1])
        elif len(self._partial) > self._max_line:
            size = len(self._partial)
        else:
            return None
        if size > self._max_line:
            raise LineTooLong(f"line longer than {self._max_line} bytes")
        return size

    def take_line(self) -> bytes:
        """The line next_size measured. Handed over, not kept: a caller that passes it on
        without holding it lets a line of tens of MB go once it is decoded."""
        return self._lines.pop()

    def leftover(self) -> PartialLastLine | None:
        """What is buffered of an unfinished line, when the caller stops reading early
        (once pop_line has handed out every whole line)."""
        if not self._partial:
            return None
        return PartialLastLine(bytes(self._partial[:200]), len(self._partial))

    @property
    def at_eof(self) -> bool:
        return self._eof

    async def receive(self) -> None:
        """Take one chunk from the stream into the buffer (or notice its end)."""
        chunk = await self._stream.receive_some(READ_CHUNK_BYTES)
        if not chunk:
            self._eof = True
            return
        self.received += len(chunk)
        if not isinstance(chunk, bytes):  # a stream may hand out a bytearray
            chunk = bytes(chunk)
        if b"\n" not in chunk:
            self._partial += chunk
            return
        lines = chunk.split(b"\n")
        if self._partial:
            self._partial += lines[0]
            lines[0] = bytes(self._partial)
        self._partial = bytearray(lines.pop())
        lines.reverse()  # handed out from the end: pop() is O(1)
        self._lines = lines + self._lines
