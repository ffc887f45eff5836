"""Transparent liveness: servo hears that a driver is alive exactly when it would if it
ran the driver itself.

servo gives up on a driver after T seconds without a byte on its stdout or stderr. A
driver can be alive by that rule and still give the aggregator nothing to pass on (blank
lines, result-so-far lines, stderr only, repeats the relay coalesces). So after `interval`
(about T/2) of our own silence, if the running driver showed life since our last line,
the last progress line is repeated. Never while the driver is silent: servo must see a
silent driver as silent, and the aggregator kills it at T-1 anyway.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from aggregator.limits import HEARTBEAT_SETTLE_SECONDS
from aggregator.supervision.output import Output

Repeat = Callable[[str], None]  # write a progress line again; gets the living driver's name


class Heartbeat:
    """`running(name)` says whether that driver's call still runs: a driver that showed
    life and then ended needs no cover (the next line servo gets is about what follows).

    A repeat is due `interval` after our last line, and never sooner than `settle` after
    the first life servo has not heard of: a driver's last bytes are often its answer,
    which the front-end passes on itself a moment later.
    """

    def __init__(self, output: Output, interval: float, repeat: Repeat,
                 running: Callable[[str], bool] = lambda name: True) -> None:
        self._output = output
        self._interval = interval
        self._settle = min(HEARTBEAT_SETTLE_SECONDS, interval / 4)
        self._repeat = repeat
        self._running = running
        self._unheard: dict[str, float] = {}  # driver -> its first life since our last line
        self._woken = trio.Event()
        self.repeated = 0

    def use(self, repeat: Repeat) -> None:
        """What to repeat from now on (e.g. the progress relay's last line)."""
        self._repeat = repeat

    def life(self, driver: str) -> None:
        """A byte came from `driver`: called per chunk read, so it must stay cheap."""
        first = self._unheard.get(driver)
        if first is None or first <= self._output.last_write:
            self._unheard[driver] = trio.current_time()
            self._woken.set()

    def _first_unheard(self) -> tuple[float, str] | None:
        """The earliest life of a running driver that servo has not heard of."""
        since = self._output.last_write
        pending = [(at, driver) for driver, at in self._unheard.items()
                   if at > since and self._running(driver)]
        return min(pending) if pending else None

    async def run(self) -> None:
        """Runs until cancelled (with the run)."""
        output = self._output
        while True:
            await self._woken.wait()
            self._woken = trio.Event()
            first = self._first_unheard()
            if first is None:
                continue
            spoke = output.last_write
            await trio.sleep_until(max(spoke + self._interval, first[0] + self._settle))
            if output.last_write != spoke:
                self._woken.set()  # we spoke meanwhile: count again from that line
                continue
            first = self._first_unheard()
            if first is not None:
                self.repeated += 1
                self._repeat(first[1])
