"""Newline-delimited reading with a hard cap on line length (trio has no readline)."""

from __future__ import annotations

import trio

from .limits import MAX_LINE_BYTES, READ_CHUNK_BYTES


class LineTooLong(Exception):
    """A line grew past the limit: the writer is not speaking the protocol."""


class PartialLastLine(Exception):
    """The stream ended in the middle of a line."""

    def __init__(self, fragment: bytes) -> None:
        super().__init__(f"stream ended inside a line of {len(fragment)} bytes")
        self.fragment = fragment


class LineReader:
    """Yields whole lines (without the newline); memory never exceeds the limit plus a chunk."""

    def __init__(self, stream: trio.abc.ReceiveStream, max_line: int = MAX_LINE_BYTES) -> None:
        self._stream = stream
        self._max_line = max_line
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already known to hold no newline
        self._eof = False

    async def next_line(self) -> bytes | None:
        """The next line, or None at a clean end of stream."""
        while True:
            newline = self._buffer.find(b"\n", self._scanned)
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                self._scanned = 0
                return line
            self._scanned = len(self._buffer)
            if self._scanned > self._max_line:
                raise LineTooLong(f"line longer than {self._max_line} bytes")
            if self._eof:
                if self._buffer:
                    fragment = bytes(self._buffer[:200])
                    self._buffer.clear()
                    raise PartialLastLine(fragment)
                return None
            chunk = await self._stream.receive_some(READ_CHUNK_BYTES)
            if not chunk:
                self._eof = True
            else:
                self._buffer += chunk
