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

import math
from collections.abc import Callable

import trio

from aggregator.supervision.output import Output

Repeat = Callable[[str], None]  # write a progress line again; gets the living driver's name


class Heartbeat:
    def __init__(self, output: Output, interval: float, repeat: Repeat) -> None:
        self._output = output
        self._interval = interval
        self._repeat = repeat
        self._last_life = -math.inf
        self._driver = ""
        self._woken = trio.Event()
        self.repeated = 0

    def use(self, repeat: Repeat) -> None:
        """What to repeat from now on (e.g. the progress relay's last line)."""
        self._repeat = repeat

    def life(self, driver: str) -> None:
        """A byte came from `driver`: called per chunk read, so it must stay cheap."""
        self._last_life = trio.current_time()
        self._driver = driver
        self._woken.set()

    async def run(self) -> None:
        """Runs until cancelled (with the run)."""
        output = self._output
        while True:
            await self._woken.wait()
            await trio.sleep_until(output.last_write + self._interval)
            if trio.current_time() < output.last_write + self._interval:
                continue  # we spoke meanwhile: count again from that line
            self._woken = trio.Event()
            if self._last_life > output.last_write:
                self.repeated += 1
                self._repeat(self._driver)
