"""One adjust-front-end job, and every driver call it can make, built in one place.

Trio-free: the entry point builds the job before trio is imported and starts the calls
it declares it makes first (opening_calls) early; the commands build their calls with
the same methods, so a head start is taken over by exactly the call it was started for.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

from aggregator.adjust.groups import adjust_groups
from aggregator.protocol.request import AdjustRequest, driver_request
from aggregator.protocol.vocabulary import Call
from aggregator.root.config import AggregatorConfig
from aggregator.root.discovery import Driver
from aggregator.supervision.spec import CallSpec, question


class Command(StrEnum):
    VERSION = "version"
    QUERY = "query"
    ADJUST = "adjust"
    DRY_RUN = "dry-run"


class AdjustJob(NamedTuple):
    """What servo (or an operator) asked of the adjust drivers, checked and ready."""

    command: Command
    app: str
    config: AggregatorConfig
    drivers: tuple[Driver, ...]
    request: AdjustRequest | None = None  # adjust and --dry-run only
    as_json: bool = False  # --dry-run --json

    def driver(self, name: str) -> Driver:
        return next(d for d in self.drivers if d.name == name)

    def info_call(self, driver: Driver) -> CallSpec:
        return question(driver, Call.INFO, self.app)

    def query_call(self, driver: Driver) -> CallSpec:
        return question(driver, Call.QUERY, self.app)

    def change_call(self, driver: Driver, components: dict[str, Any],
                    call: Call = Call.ADJUST) -> CallSpec:
        """An adjust (or rollback) of `driver`: its own settings and the whole control."""
        assert self.request is not None
        return CallSpec(driver, call, (self.app,), driver_request(self.request, components))

    def at_once(self) -> tuple[int, str]:
        """How many drivers this job must run at the same time, and why (for
        Run.require_room): every driver's --query with parallel_queries, the largest
        group's adjusts (adjust/groups.py), else one at a time (not judged). --version's
        --info calls take turns within its budget."""
        if self.command is Command.VERSION:
            return 0, ""
        needs = [(0, "")]
        if self.config.parallel_queries:
            needs.append((len(self.drivers), "parallel_queries: every driver's --query runs "
                                             "at once"))
        if self.command is Command.ADJUST:
            groups = adjust_groups(self.config, [d.name for d in self.drivers])
            largest = max(groups, key=lambda g: len(g.members), default=None)
            if largest is not None and largest.concurrent:
                needs.append((len(largest.members), f"{largest.label()} adjusts its drivers "
                                                     "at once"))
        return max(needs, key=lambda need: need[0])

    def opening_calls(self) -> list[CallSpec]:
        """The calls this job surely makes first, in the form it will make them."""
        if not self.drivers or self.command is Command.DRY_RUN:
            return []
        if self.command is Command.VERSION:
            return [self.info_call(d) for d in self.drivers]  # all at once, as version()
        queries = [self.query_call(d) for d in self.drivers]
        return queries if self.config.parallel_queries else queries[:1]

