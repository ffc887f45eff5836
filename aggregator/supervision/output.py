"""The aggregator's own stdout (servo's channel) and stderr (for people)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TextIO

from aggregator.process.linux import process_age
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.strict_json import dumps, utf8
from aggregator.protocol.text import clip_message


class Overlay(Protocol):
    """Something drawn on stderr in place (the live display) that notes must not tear."""

    def clear(self) -> None: ...
    def draw(self) -> None: ...


class Output:
    """Writes each stdout line whole, in one write, flushed; remembers when it last wrote,
    which is when servo's patience with our silence started again."""

    def __init__(self, stdout_fd: int = 1, stderr: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fd = stdout_fd
        self._stderr = stderr if stderr is not None else sys.stderr
        self._clock = clock
        # servo's clock started when it started us, interpreter start-up included
        self.last_write = clock() - process_age()
        self.closed = False  # servo went away: keep supervising, stop writing
        self.lost: str | None = None  # why lines could not be written, once one could not
        self.overlay: Overlay | None = None
        self._stdout_shares_terminal = os.isatty(stdout_fd)  # lines there tear the overlay

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Measure from now on with `clock` (trio's, once the run is under trio)."""
        silent = self._clock() - self.last_write
        self._clock = clock
        self.last_write = clock() - silent

    def silent_for(self) -> float:
        """Seconds since servo last heard from us."""
        return self._clock() - self.last_write

    def write_line(self, text: str) -> None:
        data = utf8(text + "\n")  # a lone surrogate (e.g. from a file name) cannot break it
        self.last_write = self._clock()
        overlay = self.overlay if self._stdout_shares_terminal else None
        if overlay is not None:
            overlay.clear()
        while data and not self.closed:
            try:
                written = os.write(self._fd, data)
            except BrokenPipeError:
                self._lose("servo's end of stdout is closed (EPIPE)")
                return
            except InterruptedError:
                continue
            except OSError as exc:  # e.g. /dev/full
                self._lose(f"cannot write to stdout ({exc.strerror})")
                return
            data = data[written:]
        if overlay is not None:
            overlay.draw()

    def _lose(self, why: str) -> None:
        """stdout cannot take lines any more: say so once, on stderr, and stop writing."""
        self.closed = True
        if self.lost is None:
            self.lost = why
            self.note(f"{why}: nothing more reaches servo")

    def json_line(self, obj: dict[str, Any]) -> None:
        self.write_line(dumps(obj))  # strict: no NaN or Infinity, no lone surrogate

    def note(self, text: str) -> None:
        """One readable line on stderr; never used as a heartbeat."""
        with contextlib.suppress(OSError, ValueError):  # EPIPE, /dev/full, closed
            if self.overlay is not None:
                self.overlay.clear()
            print(f"servo-agg: {text}", file=self._stderr, flush=True)
            if self.overlay is not None:
                self.overlay.draw()

    def error(self, err: AggregatorError) -> None:
        """A command-ending error: one JSON line on stdout and one readable line on stderr."""
        result = err.as_result()
        result["message"] = clip_message(err.message)
        self.json_line(result)
        self.note(f"error ({err.reason}): {err.message}")


def wants_live_display(stream: TextIO, env: Mapping[str, str]) -> bool:
    """Only on a real terminal that understands cursor movement."""
    try:
        is_tty = stream.isatty()
    except (ValueError, OSError):
        return False
    return is_tty and env.get("TERM", "") not in ("", "dumb")
