"""`measure app`: every measure driver at once, in one measurement window.

A load generator and a metrics reader must share the window, so they run together,
each supervised alone: a stuck one is killed by itself, at T-1 of its own silence. By
default a failed driver cancels the others at once (SIGUSR1, cancel grace, kill
cascade), so a load generator stops loading the target.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import trio

from aggregator import PRODUCT
from aggregator.measure.calls import MeasureJob
from aggregator.measure.describe import catalogue
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.measure import (
    merge_results,
    not_returned,
    not_returned_notice,
    result_shape_problem,
    undescribed_notice,
    unowned,
    unused_override_notice,
    unused_overrides,
)
from aggregator.protocol.result import DriverFailure, judge
from aggregator.protocol.text import clip_message
from aggregator.protocol.vocabulary import Call, Reason, Status
from aggregator.root.discovery import Driver
from aggregator.supervision.control import RunControl, ended_as
from aggregator.supervision.display import Display
from aggregator.supervision.final import finish_with_failures
from aggregator.supervision.progress_relay import (
    NoShare,
    ProgressRelay,
    SlowestDriver,
    progress_interval,
)
from aggregator.supervision.session import Session
from aggregator.supervision.spec import CallOutcome


def owned_by(owner: dict[str, str], requested: list[str]) -> dict[str, list[str]]:
    """{driver: the requested metrics it described}."""
    mine: dict[str, list[str]] = {}
    for name in requested:
        if name in owner:
            mine.setdefault(owner[name], []).append(name)
    return mine


def _on_progress(relay: ProgressRelay, display: Display, driver: str,
                 message: dict[str, Any]) -> None:
    relay.driver_progress(driver, message)
    display.progress(driver, message)


class _Measurement:
    """The state of one measure run: what each driver got and how it ended."""

    def __init__(self, job: MeasureJob, session: Session, owned: dict[str, list[str]],
                 relay: ProgressRelay) -> None:
        self.job = job
        self.session = session
        self.owned = owned
        self.relay = relay
        self.siblings = RunControl()  # what a failure cancels: the other drivers
        self.failures: list[DriverFailure] = []
        #: cut short by servo's cancel or terminate, not failed on their own
        self.cut_short: list[DriverFailure] = []
        self.results: dict[str, dict[str, Any]] = {}
        self.not_returned: dict[str, list[str]] = {}  # requested, described, not returned

    def _judged(self, outcome: CallOutcome) -> DriverFailure | None:
        """How a measure call ended: judged as any call, then its result as a measure's."""
        name = outcome.driver.name
        failure = judge(outcome, self.session.environment.stderr_mode)
        if failure is not None or outcome.result is None:
            return failure
        problem = result_shape_problem(outcome.result)
        if problem is not None:
            return DriverFailure(name, Call.MEASURE, Status.FAILED, Reason.BAD_OUTPUT,
                                 f"measure: {problem}")
        lost = not_returned(self.owned.get(name, []), outcome.result)
        if lost and self.job.config.missing_metrics == "fail":
            return DriverFailure(name, Call.MEASURE, Status.FAILED, Reason.MISSING_METRICS,
                                 f"measure: {not_returned_notice(name, lost)} "
                                 "(measure.missing_metrics: fail)")
        if lost:
            self.not_returned[name] = lost
            self.session.output.note(not_returned_notice(name, lost))
        return None

    async def run_driver(self, driver: Driver) -> None:
        session, name = self.session, driver.name
        spec = self.job.measure_call(driver, self.owned.get(name, []))
        session.display.started(name, "measure")
        outcome = await session.call(
            spec, partial(_on_progress, self.relay, session.display, name),
            limit=self.job.window_limit(driver), group=self.siblings)
        failure = self._judged(outcome)
        control = self.session.control
        self.relay.driver_done(name, f"{name}: "
                               f"{ended_as(name, failure is not None, control, self.siblings)}")
        session.display.finished(name, failure is None, failure.message if failure else "")
        if failure is None:
            self.results[name] = outcome.result or {}
            return
        if self.siblings.canceled and name in self.siblings.interrupted:
            return  # named as canceled because of the failure, not as a failure itself
        # servo's cancel (or SIGTERM) stopped every driver at once: the first of them to
        # end is not a failure that stopped the others.
        if control.stopping:
            self.cut_short.append(failure)
            return
        self.failures.append(failure)
        if self.job.config.on_failure == "cancel" and not self.siblings.canceled:
            self.siblings.cancel()  # the others stop now, each its own way

    def canceled_siblings(self) -> list[str]:
        failed = {f.driver for f in self.failures}
        return [n for n in self.siblings.interrupted if n not in failed]

    def notices(self, before: list[str]) -> list[str]:
        """What was asked for and did not come: the final line's own annotation."""
        return before + [not_returned_notice(name, self.not_returned[name])
                         for name in self.job.names if name in self.not_returned]


def asked_in_vain(job: MeasureJob, owner: dict[str, str]) -> list[str]:
    """What a measure was asked that it will not get, known before any measures:
    metrics no driver describes (derived ones the optimizer may compute itself: not an
    error), overrides keyed by no driver that runs, and a window_grace that limits
    nothing for want of a window. The final line's annotation starts with these; they
    go to stderr (and the run's record) as soon as they are known."""
    assert job.request is not None
    found = []
    missing = unowned(job.request, owner)
    if missing:
        found.append(undescribed_notice(missing))
    found += [unused_override_notice(key, key in job.config.disabled)
              for key in unused_overrides(job.request.control, job.names)]
    return found + job.window_notices()


async def measure(job: MeasureJob, session: Session) -> int:
    assert job.request is not None
    # One stream from the first describe to the last measure: the describes' progress at
    # the current percentage, then the slowest driver's.
    relay = ProgressRelay(session.output, NoShare(),
                          progress_interval(job.config.progress_interval,
                                            session.policy.line_limit))
    if session.liveness is not None:
        session.liveness.use(relay.repeat_last)
    _, owner = await relay.relaying(partial(catalogue, job, session, relay))
    in_vain = asked_in_vain(job, owner)
    for notice in in_vain:
        session.output.note(notice)
    relay.fold_with(SlowestDriver(job.names))
    run = _Measurement(job, session, owned_by(owner, job.request.names), relay)
    # The descriptions may have used up most of servo's patience with our silence: the
    # measurement must not add a driver's whole line limit to it. A pending progress line
    # is one: it goes out within the interval (a keep-alive now would let it follow, stale).
    if not relay.pending:
        session.keepalive(f"measuring: {len(job.drivers)} drivers starting")
    display = session.display
    display.begin(f"{PRODUCT}: measuring {job.app}: {len(job.drivers)} driver"
                  f"{'s' if len(job.drivers) != 1 else ''} at once "
                  f"(on_failure: {job.config.on_failure})", job.names)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay.run_flusher)
            nursery.start_soon(display.run_ticker)
            async with trio.open_nursery() as drivers:
                for driver in job.drivers:
                    drivers.start_soon(run.run_driver, driver)
            nursery.cancel_scope.cancel()
    finally:
        display.close()
    canceled = run.canceled_siblings()
    because = ([f"canceled because {', '.join(f.driver for f in run.failures)} failed: "
                f"{', '.join(canceled)}"] if canceled and run.failures else [])
    if session.control.stopping:
        session.stop_with_failures((), run.failures, cut_short=run.cut_short, extra=because)
    if run.failures:
        return finish_with_failures(session.output, run.failures, because, keys=(
            {"canceled_drivers": canceled} if canceled else None))
    try:
        final = merge_results([(n, run.results[n]) for n in job.names if n in run.results],
                              run.notices(in_vain))
    except AggregatorError as err:
        session.output.error(err)
        return 1
    if job.request.names and not final["metrics"]:
        asked = clip_message(", ".join(job.request.names), 500)
        session.output.error(AggregatorError(
            Reason.NO_METRICS, f"metrics were requested ({asked}) but no driver returned any"))
        return 1
    session.output.json_line(final)
    return 0

