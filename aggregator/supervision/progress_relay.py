"""Folding each driver's progress into one stream, as servo expects from one driver."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import trio

from aggregator.limits import PROGRESS_COALESCE_SECONDS
from aggregator.protocol.progress import progress_value
from aggregator.protocol.strict_json import json_string
from aggregator.protocol.text import brief
from aggregator.supervision.output import Output

#: Absorbs float error when flooring a percentage (e.g. 28.999999999999996 -> 29).
_TOLERANCE = 1e-9


def coalesce_window(line_limit: float | None) -> float:
    """About a second, never more than half the per-line timeout (a heartbeat must pass)."""
    if line_limit is None:
        return PROGRESS_COALESCE_SECONDS
    return min(PROGRESS_COALESCE_SECONDS, line_limit / 2)


class ProgressFold(Protocol):
    """How each driver's progress makes the overall one (before flooring and clamping)."""

    def progress(self, driver: str, percent: float, label: str) -> tuple[float, str]: ...
    def done(self, driver: str, label: str) -> tuple[float, str]: ...


class WeightedShares:
    """adjust: drivers run one after another, each a (weighted) share of the whole.

    Shares are computed as (done*100 + share*percent) / total and floored with a tiny
    tolerance: plain float rounding would show a lone driver's 29 % as 28, or end a run
    with weights 0.1/0.2/0.3 at 99 (exact fractions fix that too, at 3x the cost per line).
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        self._weights = {name: float(w) for name, w in weights.items()}
        self._total = math.fsum(self._weights.values()) or 1.0
        self._done_weights: list[float] = []
        self._done = 0.0  # fsum of _done_weights, kept exact-ish across many drivers

    def progress(self, driver: str, percent: float, label: str) -> tuple[float, str]:
        share = self._weights.get(driver, 0.0)
        return (self._done * 100 + share * percent) / self._total, label

    def done(self, driver: str, label: str) -> tuple[float, str]:
        self._done_weights.append(self._weights.get(driver, 0.0))
        self._done = math.fsum(self._done_weights)
        return self._done * 100 / self._total, label


class SlowestDriver:
    """measure: drivers run together, so the whole is as far as the slowest driver; one
    not reporting yet counts 0, one that finished 100. The message names the slowest."""

    def __init__(self, drivers: Sequence[str]) -> None:
        self._percent = dict.fromkeys(drivers, 0.0)
        self._label = {name: f"{name}: starting" for name in drivers}

    def _slowest(self) -> tuple[float, str]:
        if not self._percent:
            return 100.0, ""
        name = min(self._percent, key=self._percent.__getitem__)  # first of equals
        return self._percent[name], self._label[name]

    def progress(self, driver: str, percent: float, label: str) -> tuple[float, str]:
        if driver in self._percent:
            self._percent[driver] = percent
            self._label[driver] = label
        return self._slowest()

    def done(self, driver: str, label: str) -> tuple[float, str]:
        self._percent[driver] = 100.0
        self._label[driver] = label
        value, slowest = self._slowest()
        return value, label if value >= 100 else slowest


class ProgressRelay:
    """Every driver's progress as one stream that never goes backwards, folded by a
    ProgressFold.

    Identical consecutive lines within the coalescing window are held back, and the last
    one held is sent when the window ends, so a flood costs servo one line per window
    while a driver's heartbeat still gets through.
    """

    def __init__(self, output: Output, fold: ProgressFold, window: float,
                 clock: Callable[[], float] = trio.current_time) -> None:
        self._output = output
        self._fold = fold
        self._window = window
        self._clock = clock
        self._last_sent: tuple[int, str] | None = None
        self._last_sent_at = -math.inf
        self._held: tuple[int, str] | None = None
        self._held_event = trio.Event()
        self._warned: set[str] = set()
        self.percent = 0
        self.sent = 0
        self.held_back = 0

    def _overall(self, folded: tuple[float, str]) -> tuple[int, str]:
        value = math.floor(folded[0] + _TOLERANCE)
        return max(self.percent, min(100, value)), folded[1]

    def _offer(self, line: tuple[int, str], force: bool = False) -> None:
        now = self._clock()
        if not force and line == self._last_sent and now - self._last_sent_at < self._window:
            self._held = line
            self.held_back += 1
            self._held_event.set()
            return
        self._send(line, now)

    def _send(self, line: tuple[int, str], now: float) -> None:
        self._held = None
        self._last_sent = line
        self._last_sent_at = now
        self.percent = line[0]
        self.sent += 1
        # The same bytes json.dumps would write for this dict, without its per-call cost.
        self._output.write_line(
            f'{{"progress": {line[0]:d}, "message": {json_string(line[1])}}}', progress=True)

    def driver_progress(self, driver: str, message: dict[str, Any]) -> None:
        value = progress_value(message.get("progress"))
        text = message.get("message")
        label = f"{driver}: {text}" if isinstance(text, str) and text else driver
        if value is None:
            if driver not in self._warned:
                self._warned.add(driver)
                self._output.note(f"{driver}: ignored a progress value that is not a number "
                                  f"({brief(message.get('progress'))}); further ones are ignored "
                                  "silently")
            # Still a sign of life, passed on at the current percentage (coalesced): a
            # driver that only sends such lines must not make servo think we are stuck.
            self.hold(label)
            return
        self._offer(self._overall(self._fold.progress(driver, value, label)))

    def driver_done(self, driver: str, label: str | None = None) -> None:
        """A driver ended: its whole share is done, and servo hears it (never coalesced)."""
        self._offer(self._overall(self._fold.done(driver, label or f"{driver}: done")),
                    force=True)

    def repeat_last(self, driver: str) -> None:
        """The last line again (a keep-alive while `driver` lives but says nothing new)."""
        self._send(self._last_sent or (self.percent, f"{driver}: working"), self._clock())

    def hold(self, label: str) -> None:
        """A line that keeps the current percentage (e.g. during a rollback)."""
        self._offer((self.percent, label))

    async def run_flusher(self) -> None:
        """Sends the held line once its window has passed; runs until cancelled."""
        while True:
            await self._held_event.wait()
            self._held_event = trio.Event()
            await trio.sleep(max(0.0, self._last_sent_at + self._window - self._clock()))
            if self._held is not None:
                self._send(self._held, self._clock())
