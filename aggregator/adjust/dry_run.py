"""`adjust --dry-run app`: everything an adjust does before the first driver's adjust.

It queries the drivers and splits the request exactly as adjust does (plan.plan_adjust),
so it fails with the same errors; then it shows the plan instead of running it. No
driver's adjust is ever started.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aggregator.adjust.calls import AdjustJob
from aggregator.adjust.groups import Group, adjust_groups
from aggregator.adjust.plan import AdjustPlan, plan_adjust
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.validation import show, value_problems
from aggregator.root.discovery import scan
from aggregator.supervision.session import Session


@dataclass
class Change:
    component: str
    setting: str
    current: Any
    requested: Any
    flags: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"setting": f"{self.component}.{self.setting}", "current": self.current,
                "requested": self.requested, "flags": self.flags}

    def text(self) -> str:
        line = f"    {self.component}.{self.setting}: {show(self.current)} → {show(self.requested)}"
        if self.current == self.requested:
            line += "  (unchanged)"
        return line + "".join(f"  ! {flag}" for flag in self.flags)


@dataclass
class DriverPlan:
    driver: str
    share: float  # percent of the overall progress
    changes: list[Change]


@dataclass
class DryRun:
    app: str
    on_failure: str
    drivers: list[DriverPlan]
    skipped: list[tuple[str, str]]  # (driver, why)
    groups: list[Group] = field(default_factory=list)  # in the order they would run

    @property
    def flagged(self) -> int:
        return sum(len(c.flags) > 0 for d in self.drivers for c in d.changes)

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "app": self.app,
            "on_failure": self.on_failure,
            "drivers": [{"driver": d.driver, "progress_share": round(d.share, 2),
                         "group": self._group_of(d.driver),
                         "settings": [c.as_json() for c in d.changes]} for d in self.drivers],
            "groups": [list(g.members) for g in self.groups],
            "skipped": [{"driver": name, "why": why} for name, why in self.skipped],
            "flagged": self.flagged,
        }

    def _group_of(self, driver: str) -> str | None:
        return next((g.name for g in self.groups if driver in g.members), None)

    def text(self) -> list[str]:
        count = len(self.drivers)
        lines = [f"dry run of `adjust {self.app}`: {count} driver{'s' if count != 1 else ''} "
                 f"would run, in this order (on_failure: {self.on_failure})"]
        plans = {d.driver: d for d in self.drivers}
        for group in self.groups or [Group(None, (d.driver,)) for d in self.drivers]:
            indent = "  " if group.concurrent else ""
            if group.concurrent:
                lines.append(f"  {group.label()}: its {len(group.members)} drivers at once")
            for name in group.members:
                d = plans[name]
                lines.append(f"  {indent}{d.driver} ({d.share:.0f}% of progress)")
                lines.extend(indent + c.text() for c in d.changes)
        if self.skipped:
            lines.append("would be skipped:")
            lines.extend(f"  {name}: {why}" for name, why in self.skipped)
        if self.flagged:
            lines.append(f"{self.flagged} value{'s' if self.flagged != 1 else ''} flagged (!): "
                         "each would still be sent to its driver, which may refuse it")
        lines.append("nothing was changed: no driver's adjust was run")
        return lines


def _disabled_drivers(job: AdjustJob, servo_root: Path) -> list[str]:
    """Disabled drivers present in the drivers directory (they are not in job.drivers)."""
    if not job.config.disabled:
        return []
    try:
        candidates = scan(servo_root / job.config.drivers_dir)
    except AggregatorError:
        return []
    return [c.name for c in candidates if c.is_driver and c.name in job.config.disabled]


def build_dry_run(job: AdjustJob, plan: AdjustPlan, servo_root: Path) -> DryRun:
    weights = {name: job.config.policy(name).weight for name in plan.shares}
    total = sum(weights.values()) or 1.0
    drivers: list[DriverPlan] = []
    for name, components in plan.shares.items():
        changes: list[Change] = []
        for component, body in components.items():
            for setting, wanted in body.get("settings", {}).items():
                spec = plan.ownership.current((component, setting))
                requested = wanted.get("value")
                changes.append(Change(component, setting, spec.get("value"), requested,
                                      value_problems(spec, requested)))
        drivers.append(DriverPlan(name, weights[name] * 100 / total, changes))
    skipped = [(name, "nothing requested of it")
               for name in plan.skipped]
    skipped += [(name, "disabled in config.yaml (enabled: false)")
                for name in _disabled_drivers(job, servo_root)]
    groups = adjust_groups(job.config, [d.name for d in job.drivers], running=plan.shares)
    return DryRun(job.app, job.config.on_failure, drivers, skipped, groups)


async def dry_run(job: AdjustJob, session: Session, servo_root: Path) -> int:
    """The plan, as readable lines or one JSON object; exit 0 when adjust would run."""
    found = build_dry_run(job, await plan_adjust(job, session), servo_root)
    if job.as_json:
        session.output.json_line(found.as_json())
    else:
        session.output.report(found.text())
    return 0
