"""One measure-front-end job, and every driver call it can make, built in one place.

Trio-free: the entry point builds the job before trio is imported and starts the calls
it declares it makes first (opening_calls) early; the commands build their calls with
the same methods, so a head start is taken over by exactly the call it was started for.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any, NamedTuple

from aggregator.protocol.measure import (
    MeasurementWindow,
    MeasureRequest,
    driver_control,
    driver_request,
    measurement_window,
    window_grace_notice,
)
from aggregator.protocol.validation import show
from aggregator.protocol.vocabulary import Call
from aggregator.root.config import MeasureConfig
from aggregator.root.discovery import Driver
from aggregator.supervision.spec import CallSpec, TimeLimit, question


class MeasureCommand(StrEnum):
    VERSION = "version"
    DESCRIBE = "describe"
    MEASURE = "measure"
    DRY_RUN = "dry-run"


class MeasureJob(NamedTuple):
    """What servo (or an operator) asked of the measure drivers, checked and ready."""

    command: MeasureCommand
    app: str
    config: MeasureConfig
    drivers: tuple[Driver, ...]
    request: MeasureRequest | None = None  # measure and --dry-run only
    as_json: bool = False  # --dry-run --json

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.drivers]

    def info_call(self, driver: Driver) -> CallSpec:
        return question(driver, Call.INFO, self.app)

    def describe_call(self, driver: Driver) -> CallSpec:
        return question(driver, Call.DESCRIBE, self.app)

    def measure_call(self, driver: Driver, owned: Iterable[str]) -> CallSpec:
        """A driver's measure: the requested metrics it described, and its control."""
        assert self.request is not None
        return CallSpec(driver, Call.MEASURE, (self.app,),
                        driver_request(self.request, driver.name, owned, self.names))

    def control_of(self, driver: Driver) -> dict[str, Any] | None:
        """The control `driver` gets: the request's, its own override merged over it."""
        assert self.request is not None
        return driver_control(self.request.control, driver.name, self.names)

    def window_of(self, driver: Driver) -> MeasurementWindow:
        """The window `driver`'s own control implies (its seconds None: none)."""
        return measurement_window(self.control_of(driver))

    def window_limit(self, driver: Driver) -> TimeLimit | None:
        """`window_grace`'s limit on `driver`'s measure: its own window plus the grace,
        from its own start; None when the grace is off or its control has no timing."""
        grace, window = self.config.window_grace, self.window_of(driver).seconds
        if grace is None or window is None:
            return None
        return TimeLimit(window + grace, f"its {show(window)} s measurement window and the "
                                         f"{show(grace)} s window_grace")

    def window_notices(self) -> list[str]:
        """With window_grace set, one notice per reason some drivers' control gives no
        window to add it to (they measure without that limit)."""
        if self.config.window_grace is None:
            return []
        unusable: dict[str, list[str]] = {}
        for driver in self.drivers:
            why = self.window_of(driver).unusable
            if why:
                unusable.setdefault(why, []).append(driver.name)
        return [window_grace_notice(names, why) for why, names in unusable.items()]

    def at_once(self) -> tuple[int, str]:
        """How many drivers this job must run at the same time, and why (for
        Run.require_room): all of them, to describe and to measure. --version's --info
        calls take turns within its budget instead."""
        if self.command is MeasureCommand.VERSION:
            return 0, ""
        return len(self.drivers), ("every measure driver's --describe runs at once" if
                                   self.command is MeasureCommand.DESCRIBE else
                                   "measure drivers describe and measure all at once")

    def opening_calls(self) -> list[CallSpec]:
        """The calls this job surely makes first: every driver's --info for --version,
        every driver's --describe otherwise (all at once, as the commands make them)."""
        if self.command is MeasureCommand.DRY_RUN:
            return []
        if self.command is MeasureCommand.VERSION:
            return [self.info_call(d) for d in self.drivers]
        return [self.describe_call(d) for d in self.drivers]
