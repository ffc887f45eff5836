"""`measure --dry-run app`: everything a measure does before its drivers' measure: the
request read and checked, every driver described, the metrics split; then the plan is
shown instead of run. No driver's measure is started."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aggregator.measure.calls import MeasureJob
from aggregator.measure.describe import catalogue
from aggregator.measure.run import asked_in_vain, owned_by
from aggregator.protocol.measure import (
    MeasurementWindow,
    measurement_window,
    share_of,
    unowned,
    unused_overrides,
)
from aggregator.protocol.validation import show
from aggregator.supervision.session import Session


@dataclass
class DriverShare:
    driver: str
    metrics: list[str] | dict[str, Any]
    control: dict[str, Any] | None
    window: MeasurementWindow  # what its own control implies (window_grace counts from it)


@dataclass
class MeasurePlan:
    app: str
    on_failure: str
    window: MeasurementWindow
    window_grace: float | None
    drivers: list[DriverShare]
    unowned: list[str]
    unused_overrides: list[str]
    #: what the final line's own annotation would start with (said on stderr; in the
    #: --json document too)
    notices: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": True, "app": self.app, "on_failure": self.on_failure,
            "window_seconds": self.window.seconds, "window_grace": self.window_grace,
            "drivers": [{"driver": d.driver, "metrics": d.metrics, "control": d.control,
                         "window_seconds": d.window.seconds} for d in self.drivers],
            "unowned_metrics": self.unowned, "unused_overrides": self.unused_overrides,
            "notices": self.notices,
        }

    def text(self) -> list[str]:
        count = len(self.drivers)
        lines = [f"dry run of `measure {self.app}`: {count} driver{'s' if count != 1 else ''} "
                 f"would run at once (on_failure: {self.on_failure})"]
        limit = ("no overall limit" if self.window_grace is None else
                 f"a driver still running {show(self.window_grace)} s past its window is killed")
        if self.window.seconds is not None:
            lines.append(f"  measurement window: {self.window.shown()} ({limit})")
        elif self.window.unusable:
            lines.append(f"  measurement window: {self.window.shown()}")
        for d in self.drivers:
            names = (", ".join(d.metrics) if d.metrics
                     else "none requested of it (it runs all the same: it may generate load)")
            lines.append(f"  {d.driver}: metrics {names}")
            lines.append(f"    control {json.dumps(d.control, sort_keys=True)}")
            if d.window != self.window:
                lines.append(f"    its own window (its override): {d.window.shown()}"
                             + (f" ({limit})" if d.window.seconds is not None else ""))
        lines.append("nothing was measured: no driver's measure was run")
        return lines


async def dry_run(job: MeasureJob, session: Session) -> int:
    assert job.request is not None
    request = job.request
    _, owner = await catalogue(job, session)
    mine = owned_by(owner, request.names)
    plan = MeasurePlan(
        job.app, job.config.on_failure, measurement_window(request.control),
        job.config.window_grace,
        [DriverShare(d.name, share_of(request, mine.get(d.name, [])), job.control_of(d),
                     job.window_of(d))
         for d in job.drivers],
        unowned(request, owner), unused_overrides(request.control, job.names),
        asked_in_vain(job, owner))
    for notice in plan.notices:  # as a measure says them: on stderr, kept in the record
        session.output.note(notice)
    if job.as_json:
        session.output.json_line(plan.as_json())
    else:
        session.output.report(plan.text())
    return 0
