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
    """Yields whole lines (without the newline); memory never exceeds the limit plus a chunk."""

    def __init__(self, stream: trio.abc.ReceiveStream, max_line: int = MAX_LINE_BYTES) -> None:
        self._stream = stream
        self._max_line = max_line
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already known to hold no newline
        self._eof = False
        self.received = 0  # bytes taken from the stream so far

    def pop_line(self) -> bytes | None:
        """A whole line that is already buffered, without waiting; None if there is none.

        Lets a caller handle a burst of lines with one timeout, not one per line.
        """
        newline = self._buffer.find(b"\n", self._scanned)
        if newline > self._max_line:  # the newline came in the same chunk as the excess
            raise LineTooLong(f"line longer than {self._max_line} bytes")
        if newline >= 0:
            if newline < READ_CHUNK_BYTES:  # the flood's case: short lines, cheapest path
                line = bytes(self._buffer[:newline])
            else:  # a long line (a descriptor): copied once, not twice as a slice would be
                with memoryview(self._buffer) as view:
                    line = view[:newline].tobytes()
            del self._buffer[: newline + 1]
            self._scanned = 0
            return line
        self._scanned = len(self._buffer)
        if self._scanned > self._max_line:
            raise LineTooLong(f"line longer than {self._max_line} bytes")
        return None

    def leftover(self) -> PartialLastLine | None:
        """What is buffered of an unfinished line, when the caller stops reading early."""
        if not self._buffer:
            return None
        return PartialLastLine(bytes(self._buffer[:200]), len(self._buffer))

    @property
    def at_eof(self) -> bool:
        return self._eof

    async def receive(self) -> None:
        """Take one chunk from the stream into the buffer (or notice its end)."""
        chunk = await self._stream.receive_some(READ_CHUNK_BYTES)
        if not chunk:
            self._eof = True
        else:
            self.received += len(chunk)
            self._buffer += chunk
