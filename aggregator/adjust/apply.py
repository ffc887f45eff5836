"""`adjust app`: each driver's share of the request, group after group in order (a group
is one driver unless config.yaml groups them: adjust/groups.py), the drivers of a group at
the same time; progress folded into one stream; on a failure, the policy (continue,
stop, rollback)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from aggregator import PRODUCT
from aggregator.adjust.calls import AdjustJob
from aggregator.adjust.groups import Group, adjust_groups
from aggregator.adjust.plan import AdjustPlan, plan_adjust, stopped
from aggregator.protocol.result import AdjustStanding, DriverFailure, judge
from aggregator.protocol.validation import show
from aggregator.protocol.vocabulary import Call, Reason
from aggregator.supervision.control import ended_as
from aggregator.supervision.display import Display
from aggregator.supervision.facts import RollbackStep
from aggregator.supervision.final import finish_with_failures
from aggregator.supervision.progress_relay import (
    NoShare,
    ProgressRelay,
    WeightedShares,
    progress_interval,
)
from aggregator.supervision.session import Session
from aggregator.supervision.spec import CallEnd


def _adjust_header(job: AdjustJob, plan: AdjustPlan, groups: Sequence[Group]) -> str:
    count = len(plan.shares)
    together = sum(g.concurrent for g in groups)
    grouped = (f" in {len(groups)} group{'s' if len(groups) != 1 else ''} "
               f"({together} of them several drivers at once)" if together else "")
    return (f"{PRODUCT}: adjusting {job.app}: {count} driver{'s' if count != 1 else ''} "
            f"to run{grouped} (on_failure: {job.config.on_failure})")


def _on_progress(relay: ProgressRelay, display: Display, driver: str,
                 message: dict[str, Any]) -> None:
    relay.driver_progress(driver, message)
    display.progress(driver, message)


class _Adjustment:
    """One adjust's drivers and how each ended, whichever group it ran in."""

    def __init__(self, job: AdjustJob, session: Session, plan: AdjustPlan,
                 shares: WeightedShares, relay: ProgressRelay) -> None:
        self.job = job
        self.session = session
        self.plan = plan
        self.shares = shares
        self.relay = relay
        self.failures: list[DriverFailure] = []
        #: cut short by servo's stop or cancel, not failed on their own
        self.cut_short: list[DriverFailure] = []
        self.completed: set[str] = set()
        self.took: dict[str, float] = {}  # each driver's adjust, in seconds (for -v)

    def in_order(self, names: set[str]) -> list[str]:
        """`names` in driver (file-name) order."""
        return [name for name in self.plan.shares if name in names]

    async def run_group(self, group: Group) -> None:
        """Every driver of the group at once, each supervised alone; returns once all
        have ended (a failure lets the others finish: a rollout killed half-way leaves
        the application worse off than one finished)."""
        trace = self.session.supervisor.trace
        started = trio.current_time()
        if trace is not None and group.concurrent:
            trace(group.label(), f"{', '.join(group.members)} start at once")
        async with trio.open_nursery() as members:
            for name in group.members:
                members.start_soon(self.run_driver, name)
        if trace is not None and group.concurrent:
            failed = {f.driver for f in self.failures + self.cut_short} & set(group.members)
            alone = sum(self.took.get(name, 0.0) for name in group.members)
            together = trio.current_time() - started
            trace(group.label(), f"all {len(group.members)} ended {together:.3f} s after they "
                                 f"started together; one after another they would have "
                                 f"taken {alone:.3f} s"
                                 + (f" ({', '.join(sorted(failed))} failed)" if failed
                                    else ""))

    async def run_driver(self, name: str) -> None:
        session, relay, display = self.session, self.relay, self.session.display
        control = session.control
        spec = self.job.change_call(self.job.driver(name), self.plan.shares[name])
        self.shares.start(name)
        display.started(name)
        outcome = await session.call(spec, partial(_on_progress, relay, display, name))
        self.took[name] = outcome.elapsed
        if outcome.end is CallEnd.NOT_STARTED and control.stopping:
            return  # servo stopped the run as its group began: it never ran
        failure = judge(outcome, session.environment.stderr_mode)
        relay.driver_done(name, f"{name}: {ended_as(name, failure is not None, control)}")
        display.finished(name, failure is None, failure.message if failure else "")
        if failure is not None and control.stopping and name in control.interrupted:
            self.cut_short.append(failure)
        elif failure is not None:
            self.failures.append(failure)
        else:
            self.completed.add(name)


async def adjust(job: AdjustJob, session: Session) -> int:
    # One stream from the first query to the last adjust: the queries' progress at the
    # current percentage (0), then the drivers' shares.
    relay = ProgressRelay(session.output, NoShare(),
                          progress_interval(job.config.progress_interval,
                                            session.policy.line_limit))
    if session.liveness is not None:
        session.liveness.use(relay.repeat_last)
    plan = await relay.relaying(partial(plan_adjust, job, session, relay))
    groups = adjust_groups(job.config, [d.name for d in job.drivers], running=plan.shares)
    shares = WeightedShares({name: job.config.policy(name).weight for name in plan.shares})
    relay.fold_with(shares)
    run = _Adjustment(job, session, plan, shares, relay)
    display = session.display
    control = session.control
    policy = job.config.on_failure
    rollback = RolledBack()
    extra: list[str] = []
    extra_reasons: list[str] = []
    display.begin(_adjust_header(job, plan, groups), list(plan.shares))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay.run_flusher)
            nursery.start_soon(display.run_ticker)
            for group in groups:
                if control.stopping or (run.failures and policy != "continue"):
                    break
                # The queries may have used up most of servo's patience (the survey sends
                # no keep-alive after the last one): the first adjust must not add to it.
                # A pending progress line is one: it goes out within the interval, and a
                # keep-alive now would let it follow, stale, after this newer line.
                if not relay.pending:
                    session.keepalive(f"{group.label()}: starting", relay.percent)
                await run.run_group(group)
                if control.stopping:
                    break
            failures = sorted(run.failures, key=lambda f: list(plan.shares).index(f.driver))
            cut_short = sorted(run.cut_short, key=lambda f: list(plan.shares).index(f.driver))
            completed = run.in_order(run.completed)
            ran = {f.driver for f in failures + cut_short} | run.completed
            not_started = [n for n in plan.shares if n not in ran]
            if failures and not_started and not control.stopping:
                extra.append(f"not started (on_failure: {policy}): {', '.join(not_started)}")
            # Never after a stop: servo asked that no further driver run (see stopped()).
            if failures and policy == "rollback" and not control.stopping:
                rollback = await roll_back(job, session, plan, groups, completed, relay)
                extra.extend(rollback.lines)
                if rollback.restored != completed:
                    extra_reasons.append(Reason.ROLLBACK_FAILED)
            nursery.cancel_scope.cancel()
    finally:
        display.close()
    # A driver whose rollback failed is a failed driver too (its line and stderr are in
    # the rollback lines): servo's failed_drivers names it, as --history does.
    failed = {f.driver for f in failures} | set(rollback.failed)
    failed_drivers = [name for name in plan.shares if name in failed]
    if control.stopping:
        stopped(session, AdjustStanding(
            completed=[n for n in completed if n not in rollback.restored + rollback.cut],
            interrupted=[f.driver for f in cut_short], not_started=not_started,
            failed=[f.driver for f in failures], rolled_back=rollback.restored,
            rollback_interrupted=rollback.cut),
            failures, cut_short, extra, failed_drivers=failed_drivers)
    return finish_with_failures(session.output, failures, extra, extra_reasons,
                                keys={"failed_drivers": failed_drivers} if failures else None)


def _rollback_progress(relay: ProgressRelay, display: Display, driver: str,
                       message: dict[str, Any]) -> None:
    """A rolling-back driver's progress holds the overall percentage: it never goes back."""
    text = message.get("message")
    relay.hold(f"rollback: {driver}: {text}" if isinstance(text, str) and text
               else f"rollback: {driver}", reported=True)
    display.progress(driver, message)


@dataclass
class RolledBack:
    """What a rollback did: a line per driver for the final message (newest group first;
    in a group, the reverse of file-name order); and, in driver order, the drivers
    restored (all that completed when every rollback worked), those whose rollback
    failed on its own, and those whose rollback servo's stop cut short."""

    lines: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)


async def roll_back(job: AdjustJob, session: Session, plan: AdjustPlan,
                    groups: Sequence[Group], completed: Sequence[str],
                    relay: ProgressRelay) -> RolledBack:
    """Put every driver that completed back to its pre-adjust values: the groups in the
    reverse of the order they ran, the drivers of one group at the same time (as systemd
    stops units), so the last change made is the first undone.
    """
    if not completed:
        return RolledBack(["rollback: nothing to roll back (no driver had completed)"])
    done = set(completed)
    lines: dict[str, list[str]] = {}
    steps: dict[str, RollbackStep] = {}
    restored_drivers: set[str] = set()
    cut: set[str] = set()
    failed: set[str] = set()

    async def restore(name: str) -> None:
        components = plan.rollback_components(name)
        values = {f"{c}.{s}": v["value"] for c, body in components.items()
                  for s, v in body["settings"].items()}
        restored = ", ".join(f"{key}={show(value)}" for key, value in values.items())
        if session.control.stopping:
            lines[name] = [f"rollback of {name}: not attempted (servo-agg was stopped)"]
            steps[name] = RollbackStep(name, "not attempted", values, "servo-agg was stopped")
            return
        relay.hold(f"rollback: {name}")
        session.display.started(name, "rollback")
        spec = job.change_call(job.driver(name), components, Call.ROLLBACK)
        outcome = await session.call(spec, partial(_rollback_progress, relay, session.display,
                                                   name))
        failure = judge(outcome, session.environment.stderr_mode)
        session.display.finished(name, failure is None, failure.message if failure else "")
        steps[name] = RollbackStep(name, "restored" if failure is None else "failed", values,
                                   "" if failure is None else failure.message)
        if failure is None:
            lines[name] = [f"rollback of {name}: ok, restored {restored}"]
            restored_drivers.add(name)
            return
        if session.control.stopping and name in session.control.interrupted:
            cut.add(name)
        else:
            failed.add(name)
        lines[name] = [f"rollback of {name}: FAILED ({failure.message}); "
                       f"{restored} may not be restored"]
        if failure.stderr:
            lines[name].append(f"--- {name} rollback stderr ---\n{failure.stderr}")

    order: list[str] = []
    for group in reversed(groups):
        members = [name for name in reversed(group.members) if name in done]
        if not members:
            continue
        order.extend(members)
        async with trio.open_nursery() as together:
            for name in members:
                together.start_soon(restore, name)
    session.facts.rollback.extend(steps[name] for name in order)
    return RolledBack([line for name in order for line in lines[name]],
                      [name for name in completed if name in restored_drivers],
                      [name for name in completed if name in failed],
                      [name for name in completed if name in cut])
