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
from aggregator.protocol.measure import share_of, unowned, unused_overrides, window_seconds
from aggregator.protocol.validation import show
from aggregator.supervision.session import Session


@dataclass
class DriverShare:
    driver: str
    metrics: list[str] | dict[str, Any]
    control: dict[str, Any] | None
    window: float | None  # what its own control implies (window_grace counts from it)


@dataclass
class MeasurePlan:
    app: str
    on_failure: str
    window: float | None
    window_grace: float | None
    drivers: list[DriverShare]
    unowned: list[str]
    unused_overrides: list[str]
    notices: list[str]  # what the final line's own annotation would start with

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": True, "app": self.app, "on_failure": self.on_failure,
            "window_seconds": self.window, "window_grace": self.window_grace,
            "drivers": [{"driver": d.driver, "metrics": d.metrics, "control": d.control,
                         "window_seconds": d.window} for d in self.drivers],
            "unowned_metrics": self.unowned, "unused_overrides": self.unused_overrides,
            "notices": self.notices,
        }

    def text(self) -> list[str]:
        count = len(self.drivers)
        lines = [f"dry run of `measure {self.app}`: {count} driver{'s' if count != 1 else ''} "
                 f"would run at once (on_failure: {self.on_failure})"]
        limit = ("no overall limit" if self.window_grace is None else
                 f"a driver still running {show(self.window_grace)} s after it is killed")
        if self.window is not None:
            lines.append(f"  measurement window: {show(self.window)} s ({limit})")
        for d in self.drivers:
            names = (", ".join(d.metrics) if d.metrics
                     else "none requested of it (it runs all the same: it may generate load)")
            lines.append(f"  {d.driver}: metrics {names}")
            lines.append(f"    control {json.dumps(d.control, sort_keys=True)}")
            if d.window != self.window:
                own = "none" if d.window is None else f"{show(d.window)} s"
                lines.append(f"    its own window (its override): {own}"
                             + (f" ({limit})" if d.window is not None else ""))
        lines += [f"note: {notice}" for notice in self.notices]
        lines.append("nothing was measured: no driver's measure was run")
        return lines


async def dry_run(job: MeasureJob, session: Session) -> int:
    assert job.request is not None
    request = job.request
    _, owner = await catalogue(job, session)
    mine = owned_by(owner, request.names)
    plan = MeasurePlan(
        job.app, job.config.on_failure, window_seconds(request.control),
        job.config.window_grace,
        [DriverShare(d.name, share_of(request, mine.get(d.name, [])), job.control_of(d),
                     job.window_of(d))
         for d in job.drivers],
        unowned(request, owner), unused_overrides(request.control, job.names),
        asked_in_vain(job, owner))
    if job.as_json:
        session.output.json_line(plan.as_json())
    else:
        session.output.report(plan.text())
    return 0
