"""Bounded keeping of a driver's stderr: its head and its tail, and a count of the rest.

Trio-free; the supervised call feeds it what it reads."""

from __future__ import annotations

from collections import deque

from aggregator.limits import STDERR_HEAD_BYTES, STDERR_TAIL_BYTES
from aggregator.protocol.environment import StderrMode


class StderrCapture:
    """Keeps at most head+tail bytes however much a driver writes."""

    def __init__(self, head: int = STDERR_HEAD_BYTES, tail: int = STDERR_TAIL_BYTES) -> None:
        self._head_limit = head
        self._tail_limit = tail
        self._head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self.dropped = 0
        self.total = 0

    def feed(self, data: bytes | bytearray) -> None:
        self.total += len(data)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data:
            return
        self._tail.append(bytes(data))
        self._tail_size += len(data)
        while self._tail_size > self._tail_limit:
            excess = self._tail_size - self._tail_limit
            first = self._tail[0]
            if len(first) <= excess:
                self._tail.popleft()
                self._tail_size -= len(first)
                self.dropped += len(first)
            else:
                self._tail[0] = first[excess:]
                self._tail_size -= excess
                self.dropped += excess

    def tail(self, limit: int) -> bytes:
        """The last `limit` bytes written (all of them when fewer), for the run's record;
        exact while `limit` is at most the tail kept."""
        if limit <= 0:
            return b""
        kept = b"".join(self._tail)
        if len(kept) < limit and not self.dropped:
            kept = bytes(self._head) + kept
        return kept[-limit:]

    def text(self) -> str:
        head = self._head.decode("utf-8", "replace")
        tail = b"".join(self._tail).decode("utf-8", "replace")
        if self.dropped:
            return f"{head}\n[... {self.dropped} bytes of stderr dropped ...]\n{tail}"
        return head + tail

    def for_message(self, mode: StderrMode) -> str:
        """Stderr as servo would append it: all, the first two lines, or nothing."""
        if mode == "none":
            return ""
        text = self.text().strip("\n")
        if mode == "minimal":
            return "\n".join(text.splitlines()[:2])
        return text
