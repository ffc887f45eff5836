"""A live per-driver progress view for people who run an adjust by hand on a terminal.

servo reads a driver's stderr through a pipe, so it never gets this: the view is only
drawn when stderr is a terminal. It is a block of one line per driver, redrawn in place;
Output.note clears it first and draws it again after, so notes and `-v` traces scroll
above it instead of tearing it. What drivers wrote (messages, failures) and their file
names are shown with control characters escaped (protocol.text.visible).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import trio

from aggregator.protocol.progress import progress_value
from aggregator.protocol.text import visible

#: Redraws caused by a driver's own progress lines are at most this often (a flood is cheap).
REDRAW_INTERVAL_SECONDS = 0.1
#: While a driver runs, its elapsed time is redrawn this often even when it says nothing.
TICK_SECONDS = 0.5
BAR_WIDTH = 20
#: What a row says while its driver's call runs.
_DOING = {"adjust": "adjusting", "rollback": "rolling back", "measure": "measuring"}
#: A running driver silent this long shows its silence (against its limit, if any).
SILENCE_SHOWN_SECONDS = 5.0


class Display:
    """What the adjust loop tells a display; this one shows nothing (servo, pipes, files)."""

    def begin(self, header: str, drivers: Sequence[str]) -> None:
        """The drivers that will run, in order."""

    def started(self, driver: str, what: str = "adjust") -> None:
        """A call of `driver` began (`what` is adjust, rollback or measure)."""

    def progress(self, driver: str, message: Mapping[str, Any]) -> None:
        """A progress line from the running driver."""

    def alive(self, driver: str) -> None:
        """`driver` gave a sign of life (any byte on stdout or stderr)."""

    def finished(self, driver: str, ok: bool, why: str = "") -> None:
        """The running call of `driver` ended; `why` it failed, if it did."""

    def close(self) -> None:
        """The run is over: one summary line per driver stays on screen."""

    async def run_ticker(self) -> None:
        await trio.sleep_forever()


@dataclass
class _Row:
    driver: str
    state: str = "waiting"  # waiting, adjusting, done, FAILED, rolling back, rolled back, ...
    percent: float = 0.0
    message: str = ""
    since: float | None = None
    took: float | None = None
    last_life: float | None = None  # its last byte on stdout or stderr


class LiveDisplay(Display):
    """`line_limit`: how long servo-agg waits for a driver's next line (None: no limit),
    shown beside a long silence."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = trio.current_time,
                 width: int | None = None, line_limit: float | None = None) -> None:
        self._stream = stream
        self._clock = clock
        self._width = width
        self._line_limit = line_limit
        self._rows: dict[str, _Row] = {}
        self._drawn = 0  # lines of the block currently on screen
        self._last_draw = -float("inf")
        self._active = False

    # -- events from the adjust loop ------------------------------------------------
    def begin(self, header: str, drivers: Sequence[str]) -> None:
        self._rows = {name: _Row(name) for name in drivers}
        self._active = True
        self._write(f"\r{visible(header)}\n")
        self.draw()

    def started(self, driver: str, what: str = "adjust") -> None:
        row = self._rows.setdefault(driver, _Row(driver))
        row.since, row.took, row.message = self._clock(), None, ""
        row.last_life = row.since
        row.state = _DOING.get(what, what)
        if what != "rollback":
            row.percent = 0.0
        self.draw()

    def progress(self, driver: str, message: Mapping[str, Any]) -> None:
        row = self._rows.get(driver)
        if row is None:
            return
        value = progress_value(message.get("progress"))
        if value is not None and row.state != "rolling back":
            row.percent = value
        text = message.get("message")
        if isinstance(text, str):
            row.message = visible(" ".join(text.split()))
        if self._clock() - self._last_draw >= REDRAW_INTERVAL_SECONDS:
            self.draw()

    def alive(self, driver: str) -> None:
        row = self._rows.get(driver)
        if row is not None:
            row.last_life = self._clock()

    def finished(self, driver: str, ok: bool, why: str = "") -> None:
        row = self._rows.get(driver)
        if row is None:
            return
        if row.since is not None:
            row.took = self._clock() - row.since
        if row.state == "rolling back":
            row.state = "rolled back" if ok else "ROLLBACK FAILED"
        else:
            row.state = "done" if ok else "FAILED"
            if ok:
                row.percent = 100.0
        row.message = visible(" ".join(why.split()))
        self.draw()

    def close(self) -> None:
        """The block gives way to one line per driver, whole (a terminal may wrap it: it
        is not redrawn): its state, how long it took and, for a failure, why."""
        if not self._active:
            return
        for row in self._rows.values():
            if row.state == "waiting":
                row.state = "not started"
        self.clear()
        self._active = False
        width = max((len(visible(name)) for name in self._rows), default=0)
        self._write("".join(f"\r  {visible(row.driver):<{width}}  {row.state}"
                            + (f" after {row.took:.1f} s" if row.took is not None else "")
                            + (f": {row.message}" if row.message else "") + "\n"
                            for row in self._rows.values()))

    async def run_ticker(self) -> None:
        while True:
            await trio.sleep(TICK_SECONDS)
            if any(r.took is None and r.since is not None for r in self._rows.values()):
                self.draw()

    # -- drawing ----------------------------------------------------------------------
    def _columns(self) -> int:
        if self._width is not None:
            return self._width
        try:
            columns = os.get_terminal_size(self._stream.fileno()).columns
        except (OSError, ValueError):
            columns = 0
        return columns if columns > 0 else 80  # a pty nobody sized says 0

    def _silence(self, row: _Row, now: float) -> str:
        """`silent 12 s of 29 s` for a running driver quiet for long; "" otherwise."""
        if row.took is not None or row.last_life is None:
            return ""
        silent = now - row.last_life
        if silent < SILENCE_SHOWN_SECONDS:
            return ""
        limit = (f"of {self._line_limit:g} s" if self._line_limit is not None
                 else "(no limit)")
        return f"  silent {silent:.0f} s {limit}"

    def render(self) -> list[str]:
        """The block's lines, each cut to the terminal width (a wrapped line would make
        the next redraw land in the wrong place). A long message loses its start, not
        its end, where drivers put counters such as (1/4)."""
        width = max(20, self._columns() - 1)
        name_width = max((len(visible(name)) for name in self._rows), default=0)
        now = self._clock()
        lines = []
        for row in self._rows.values():
            filled = round(row.percent * BAR_WIDTH / 100)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            if row.took is not None:
                timing = f" {row.took:.1f} s"
            elif row.since is not None:
                timing = f" {now - row.since:.1f} s"
            else:
                timing = ""
            head = (f"  {visible(row.driver):<{name_width}} [{bar}] {row.percent:3.0f}%  "
                    f"{row.state}{timing}{self._silence(row, now)}")
            room = width - len(head) - 2
            message = row.message
            if message and len(message) > room:
                message = "..." + message[len(message) - room + 3:] if room > 3 else ""
            lines.append((head + (f"  {message}" if message else ""))[:width])
        return lines

    def clear(self) -> None:
        """Erase the block (before a note is printed above where it was)."""
        if self._drawn:
            self._write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def draw(self) -> None:
        if not self._active:
            return
        lines = self.render()
        erase = f"\x1b[{self._drawn}F" if self._drawn else ""
        # Each line starts with \r: a terminal without output newline translation (onlcr
        # off) would otherwise start it where the previous one ended.
        self._write(erase + "".join(f"\r\x1b[2K{line}\n" for line in lines) + "\r\x1b[J")
        self._drawn = len(lines)
        self._last_draw = self._clock()

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            self._active = False  # the terminal went away; the run goes on without it
