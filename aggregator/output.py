"""The aggregator's own stdout (servo's channel) and stderr (for people)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any, TextIO

from .errors import AggregatorError
from .limits import MAX_MESSAGE_BYTES


def clip_message(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """Cut a message as servo does, on a character boundary."""
    encoded = message.encode("utf-8")
    if len(encoded) <= limit:
        return message
    marker = "\n[... cut at 2 MiB ...]"
    return encoded[: limit - len(marker)].decode("utf-8", "ignore") + marker


class Output:
    """Writes each stdout line whole, in one write, flushed; remembers when it last wrote."""

    def __init__(self, stdout_fd: int = 1, stderr: TextIO | None = None) -> None:
        self._fd = stdout_fd
        self._stderr = stderr if stderr is not None else sys.stderr
        self.last_write = time.monotonic()
        self.closed = False  # servo went away: keep supervising, stop writing

    def write_line(self, text: str) -> None:
        data = (text + "\n").encode("utf-8")
        self.last_write = time.monotonic()
        while data and not self.closed:
            try:
                written = os.write(self._fd, data)
            except BrokenPipeError:
                self.closed = True
                return
            except InterruptedError:
                continue
            data = data[written:]

    def json_line(self, obj: dict[str, Any]) -> None:
        self.write_line(json.dumps(obj, separators=(", ", ": ")))

    def note(self, text: str) -> None:
        """One readable line on stderr; never used as a heartbeat."""
        with contextlib.suppress(BrokenPipeError, ValueError):
            print(f"servo-agg: {text}", file=self._stderr, flush=True)

    def error(self, err: AggregatorError) -> None:
        """A command-ending error: one JSON line on stdout and one readable line on stderr."""
        result = err.as_result()
        result["message"] = clip_message(err.message)
        self.json_line(result)
        self.note(f"error ({err.reason}): {err.message}")
