"""Folding each driver's progress into one stream, as servo expects from one driver, at a
rate servo can afford: it makes one synchronous request to the optimizer per line."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import trio

from aggregator.limits import DEFAULT_PROGRESS_INTERVAL_SECONDS
from aggregator.protocol.progress import progress_value
from aggregator.protocol.strict_json import json_string
from aggregator.protocol.text import brief
from aggregator.supervision.output import Output

#: Absorbs float error when flooring a percentage (e.g. 28.999999999999996 -> 29).
_TOLERANCE = 1e-9

T = TypeVar("T")


def encoded(line: tuple[int, str]) -> str:
    """The bytes json.dumps would write for the progress line, without its per-call cost."""
    percent, label = line
    return f'{{"progress": {percent:d}, "message": {json_string(label)}}}'


def progress_interval(configured: float = DEFAULT_PROGRESS_INTERVAL_SECONDS,
                      line_limit: float | None = None) -> float:
    """The configured interval, never more than half the per-line limit: a pending line
    must go out well before servo's patience with our silence runs out."""
    if line_limit is None:
        return configured
    return min(configured, line_limit / 2)


class ProgressFold(Protocol):
    """How each driver's progress makes the overall one (before flooring and clamping)."""

    def progress(self, driver: str, percent: float, label: str) -> tuple[float, str]: ...
    def done(self, driver: str, label: str) -> tuple[float, str]: ...


class NoShare:
    """The calls before any driver has a share (the queries before an adjust, the
    describes before a measure): each driver's progress line passes on at the current
    percentage, labelled with the driver, and moves nothing. servo posts each such line,
    so a long survey still gives the optimizer its chances to cancel."""

    def progress(self, driver: str, percent: float, label: str) -> tuple[float, str]:
        return 0.0, label

    def done(self, driver: str, label: str) -> tuple[float, str]:
        return 0.0, label


class WeightedShares:
    """adjust: each driver a (weighted) share of the whole. Drivers run one after another,
    or a group of them at the same time: the shares of the running drivers add up, and
    the message names the slowest of them (one that has not reported yet counts 0).

    Shares are computed as (done*100 + sum of share*percent) / total and floored with a
    tiny tolerance: plain float rounding would show a lone driver's 29 % as 28, or end a
    run with weights 0.1/0.2/0.3 at 99 (exact fractions fix that too, at 3x the cost per
    line).
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        self._weights = {name: float(w) for name, w in weights.items()}
        self._total = math.fsum(self._weights.values()) or 1.0
        self._done_weights: list[float] = []
        self._done = 0.0  # fsum of _done_weights, kept exact-ish across many drivers
        #: each running driver's percent and label, in the order they started
        self._running: dict[str, tuple[float, str]] = {}

    def start(self, driver: str) -> None:
        """`driver` began: it counts 0 % (and may be the slowest) until it reports."""
        self._running[driver] = (0.0, f"{driver}: starting")

    def _value(self) -> float:
        weights = self._weights
        running = math.fsum(weights.get(driver, 0.0) * percent
                            for driver, (percent, _) in self._running.items())
        return (self._done * 100 + running) / self._total

    def _slowest(self) -> tuple[float, str]:
        """The running driver furthest behind (the first started of equals)."""
        slowest = min(percent for percent, _ in self._running.values())
        return slowest, next(text for p, text in self._running.values() if p == slowest)

    def progress(self, driver: str, percent: float, label: str) -> tuple[float, str]:
        self._running[driver] = (percent, label)
        if len(self._running) == 1:  # one at a time: its own line, as it was
            return self._value(), label
        slowest, named = self._slowest()
        if percent == slowest:  # of drivers equally far behind, the one that just reported
            return self._value(), label
        return self._value(), named

    def done(self, driver: str, label: str) -> tuple[float, str]:
        """Its whole share counts; the line is its own `label` when no other driver of its
        group still runs, else it names the slowest of those (as SlowestDriver's does)."""
        self._running.pop(driver, None)
        self._done_weights.append(self._weights.get(driver, 0.0))
        self._done = math.fsum(self._done_weights)
        return self._value(), self._slowest()[1] if self._running else label


class SlowestDriver:
    """measure: drivers run together, so the whole is as far as the slowest driver; one
    not reporting yet counts 0, one that finished 100. The message names the slowest (of
    several equally far behind, the one that reported last)."""

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
        value, slowest = self._slowest()
        # Of drivers equally far behind, the one that just reported is named: its line is
        # news, where the first of them would repeat the line servo was given last.
        return value, label if self._percent.get(driver) == value else slowest

    def done(self, driver: str, label: str) -> tuple[float, str]:
        self._percent[driver] = 100.0
        self._label[driver] = label
        value, slowest = self._slowest()
        return value, label if value >= 100 else slowest


class ProgressRelay:
    """Every driver's progress as one stream that never goes backwards, folded by a
    ProgressFold, written at most once per `interval`.

    A line offered when the last write is at least an interval old goes out at once;
    otherwise it waits for the interval to end, and a newer line replaces it, so servo
    always sees the newest state, at most one interval late. Milestones (a driver's first
    progress line, the end of its share) are never replaced: they wait like any line and
    go out in order, whole lines in one write, with the newest state after them. A
    keep-alive (`repeat_last`) writes at once. `close` (when the flusher ends, before the
    command writes its final line) writes what is pending; after it nothing is written,
    so no progress line can follow the final one.

    Every line a driver prints as progress (a driver report) gets servo a line within one
    interval, even when the folded state reads exactly as the last line written: servo
    learns of the optimizer's cancel only in the reply to a progress post, so the
    optimizer must get at least the chances to cancel that the busiest driver would give
    it alone (capped by the interval). Only lines of the aggregator's own bookkeeping (a
    driver's end, which changes nothing servo can see when that driver is not the
    slowest) are dropped when they would only repeat the last line: a request to the
    optimizer that says nothing new and stands for nothing a driver did.

    A flood costs as little per line as it can: while a line is pending, a driver's next
    ordinary line is only stored, its value and message as they came; folding, labelling
    and encoding wait until a line is written, and only the newest state of each driver
    is folded then (percentages still never go down).
    """

    def __init__(self, output: Output, fold: ProgressFold, interval: float,
                 clock: Callable[[], float] = trio.current_time) -> None:
        """`clock` must be trio's when `run_flusher` runs (it sleeps on trio's clock)."""
        self._output = output
        self._fold = fold
        self._interval = interval
        self._clock = clock
        self._milestones: list[tuple[int, str]] = []  # pending, in order
        self._newest: tuple[int, str] | None = None  # pending, replaceable
        #: newer than _newest: each driver's latest (value, message text), not folded yet
        self._unfolded: dict[str, tuple[float, Any]] = {}
        self._due = False  # something is pending and the flusher is told
        self._reported = False  # a driver report is among what is pending
        self._wake = trio.Event()
        self._last_write = -math.inf
        self._last_sent: tuple[int, str] | None = None
        self._closed = False
        self._started: set[str] = set()  # drivers whose first progress line was offered
        self._warned: set[str] = set()
        self._percent = 0
        self.sent = 0  # lines written
        self.superseded = 0  # lines replaced by a newer one before servo saw them

    def fold_with(self, fold: ProgressFold) -> None:
        """From now on fold with `fold` (the survey's NoShare, then the command's own).
        What was offered is folded with the old one first; each driver's next line is a
        first line again (of a new call), and the percentage never goes down."""
        self._fold_unfolded()
        self._fold = fold
        self._started.clear()

    @property
    def pending(self) -> bool:
        """A line is waiting for the end of the interval (it will go out within one)."""
        return self._due

    @property
    def percent(self) -> int:
        """The overall percentage of the newest state."""
        self._fold_unfolded()
        return self._percent

    def _overall(self, folded: tuple[float, str]) -> tuple[int, str]:
        value = math.floor(folded[0] + _TOLERANCE)
        percent = self._percent = max(self._percent, min(100, value))
        return percent, folded[1]

    def _fold_unfolded(self) -> None:
        """Each driver's stored line into the fold, the newest driver's last; the state
        after all of them (not one in between, which may never have been true) becomes
        the pending line."""
        if self._unfolded:
            unfolded, self._unfolded = self._unfolded, {}
            for driver, (value, text) in unfolded.items():
                label = f"{driver}: {text}" if isinstance(text, str) and text else driver
                folded = self._fold.progress(driver, value, label)
            self._newest = self._overall(folded)

    def _offer(self, line: tuple[int, str], milestone: bool = False,
               reported: bool = False) -> None:
        """`reported`: the line passes on a driver's own progress line (see the class)."""
        if self._closed:
            return
        self._reported |= reported
        self._fold_unfolded()
        if self._newest is not None:
            self.superseded += 1
        if milestone:
            self._milestones.append(line)
            self._newest = None
        else:
            self._newest = line
        if self._due:  # the flood's usual case: the flusher writes it when the time comes
            return
        now = self._clock()
        if now - self._last_write >= self._interval:
            self._flush(now)
        else:
            self._due = True
            self._wake.set()

    def _flush(self, now: float) -> bool:
        """Write what is pending; False if servo would have seen nothing new and no
        driver reported anything since the last write."""
        self._fold_unfolded()
        pending = [(line, encoded(line), True) for line in self._milestones]
        if self._newest is not None:
            pending.append((self._newest, encoded(self._newest), False))
        self._milestones = []
        self._newest = None
        self._due = False
        reported, self._reported = self._reported, False
        if self._interval > 0 and pending:
            # servo forwards each line as a request to the optimizer: at a bounded rate,
            # a repeat of the line servo was given last is dropped, unless it stands for
            # a driver's report (the optimizer's chance to cancel), and then it is sent
            # once, the newest state. Interval 0 relays every line as it came;
            # keep-alives repeat on purpose (repeat_last).
            before, kept = self._output.last_line, []
            for entry in pending:
                if entry[1] != before:
                    kept.append(entry)
                    before = entry[1]
            pending = kept or ([pending[-1]] if reported else [])
        if not pending:
            self._last_write = now  # paced as a write: a flood servo cannot see stays cheap
            return False
        self._write(pending, now)
        return True

    def _write(self, lines: list[tuple[tuple[int, str], str, bool]], now: float) -> None:
        """Whole lines in one write: (line, its text, whether it is a milestone) each. Only
        a write without a milestone may be superseded by a newer one while servo does not
        read."""
        self._last_write = now
        self._last_sent = lines[-1][0]
        self.sent += len(lines)
        self._output.write_line("\n".join(text for _, text, _ in lines),
                                progress=not any(milestone for _, _, milestone in lines))

    def driver_progress(self, driver: str, message: dict[str, Any]) -> None:
        value = progress_value(message.get("progress"))
        if self._due and value is not None and driver in self._started and not self._closed:
            # A flood's usual line: stored as it came, folded only if still the newest
            # when the interval ends.
            if self._unfolded or self._newest is not None:
                self.superseded += 1
            self._unfolded.pop(driver, None)  # re-inserted last: the newest driver
            self._unfolded[driver] = (value, message.get("message"))
            self._reported = True
            return
        self._fold_unfolded()  # what came before this line is older: folded first
        text = message.get("message")
        label = f"{driver}: {text}" if isinstance(text, str) and text else driver
        first = driver not in self._started
        if first:
            self._started.add(driver)
        if value is None:
            if driver not in self._warned:
                self._warned.add(driver)
                self._output.note(f"{driver}: ignored a progress value that is not a number "
                                  f"({brief(message.get('progress'))}); further ones are ignored "
                                  "silently")
            # Still a sign of life, passed on at the current percentage: a driver that only
            # sends such lines must not make servo think we are stuck.
            self._offer((self.percent, label), first, reported=True)  # (percent folds
            return  # what is stored)
        self._offer(self._overall(self._fold.progress(driver, value, label)), first,
                    reported=True)

    def driver_done(self, driver: str, label: str | None = None) -> None:
        """A driver ended: its whole share is done, and servo hears it (never replaced)."""
        self._fold_unfolded()
        self._offer(self._overall(self._fold.done(driver, label or f"{driver}: done")),
                    milestone=True)

    def repeat_last(self, driver: str) -> None:
        """A keep-alive while `driver` lives but says nothing new, written now: what is
        pending if anything is (the newest state), else the last line again."""
        if self._closed:
            return
        now = self._clock()
        if not (self._due and self._flush(now)):
            line = self._last_sent or (self.percent, f"{driver}: working")
            self._write([(line, encoded(line), False)], now)

    def hold(self, label: str, *, reported: bool = False) -> None:
        """A line that keeps the current percentage (e.g. during a rollback); `reported`
        when it passes on a driver's own progress line."""
        self._offer((self.percent, label), reported=reported)

    def close(self) -> None:
        """Write what is pending, then nothing more: the command's final line is next."""
        if not self._closed:
            self._flush(self._clock())
            self._closed = True

    async def _flush_on_time(self) -> None:
        """Writes what is pending when its interval ends; runs until cancelled."""
        if self._due:  # left pending when an earlier flusher stopped
            self._wake.set()
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._due:  # again only if a keep-alive moved the end meanwhile
                end = self._last_write + self._interval
                if self._clock() >= end:
                    self._flush(self._clock())
                    break
                await trio.sleep_until(end)

    async def run_flusher(self) -> None:
        """Writes what is pending when its interval ends; runs until cancelled, and then
        closes the relay (the command's nursery ends before its final line is written)."""
        try:
            await self._flush_on_time()
        finally:
            self.close()

    async def relaying(self, work: Callable[[], Awaitable[T]]) -> T:
        """`work` (a survey's calls) with its progress flushed on time; the relay stays
        open for what follows, a pending line taken on by the next flusher. When `work`
        raises, the command ends: what is pending goes out before its final line, and
        the relay is closed."""
        failed: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._flush_on_time)
            try:
                result = await work()
            except Exception as exc:  # raised past the nursery, not as a group of one
                failed = exc
            nursery.cancel_scope.cancel()
        if failed is not None:
            self.close()
            raise failed
        return result
