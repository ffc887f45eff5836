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
    result_shape_problem,
    unowned,
    window_seconds,
)
from aggregator.protocol.result import DriverFailure, judge
from aggregator.protocol.text import clip_message
from aggregator.protocol.validation import show
from aggregator.protocol.vocabulary import Call, Reason, Status
from aggregator.root.discovery import Driver
from aggregator.supervision.control import RunControl
from aggregator.supervision.display import Display
from aggregator.supervision.final import finish_with_failures
from aggregator.supervision.progress_relay import (
    ProgressRelay,
    SlowestDriver,
    progress_interval,
)
from aggregator.supervision.session import Session


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
        self.results: dict[str, dict[str, Any]] = {}
        self.deadline: float | None = None
        self.deadline_detail: str | None = None

    def set_overall_limit(self) -> None:
        """The optional overall limit: the window the control implies, plus a grace."""
        grace = self.job.config.window_grace
        assert self.job.request is not None
        window = window_seconds(self.job.request.control)
        if grace is None or window is None:
            return
        self.deadline = trio.current_time() + window + grace
        self.deadline_detail = (f"still running {show(grace)} s after its "
                                f"{show(window)} s measurement window; killed")

    async def run_driver(self, driver: Driver) -> None:
        session, name = self.session, driver.name
        spec = self.job.measure_call(driver, self.owned.get(name, []))
        session.display.started(name, "measure")
        outcome = await session.supervisor.call(
            spec, partial(_on_progress, self.relay, session.display, name),
            on_life=session.life_handler(spec), deadline=self.deadline,
            deadline_detail=self.deadline_detail, group=self.siblings)
        failure = judge(outcome, session.environment.stderr_mode)
        if failure is None and outcome.result is not None:
            problem = result_shape_problem(outcome.result)
            if problem is not None:
                failure = DriverFailure(name, Call.MEASURE, Status.FAILED, Reason.BAD_OUTPUT,
                                        f"measure: {problem}")
        canceled = (failure is not None and self.siblings.canceled
                    and name in self.siblings.interrupted)  # because another one failed
        # servo's cancel (or SIGTERM) stopped every driver at once: the first of them to
        # end is not a failure that stopped the others.
        control = self.session.control
        stopped = failure is not None and control.stopping
        if failure is None:
            ended = "done"
        elif canceled or (stopped and control.terminated_by is None):
            ended = "canceled"  # by a sibling's failure, or by servo
        else:
            ended = "stopped" if stopped else "failed"
        self.relay.driver_done(name, f"{name}: {ended}")
        session.display.finished(name, failure is None, failure.message if failure else "")
        if failure is None:
            self.results[name] = outcome.result or {}
            return
        if canceled:
            return  # named as canceled because of the failure, not as a failure itself
        self.failures.append(failure)
        if (self.job.config.on_failure == "cancel" and not self.siblings.canceled
                and not stopped):
            self.siblings.cancel()  # the others stop now, each its own way

    def canceled_siblings(self) -> list[str]:
        failed = {f.driver for f in self.failures}
        return [n for n in self.siblings.interrupted if n not in failed]


async def measure(job: MeasureJob, session: Session) -> int:
    assert job.request is not None
    _, owner = await catalogue(job, session)
    missing = unowned(job.request, owner)
    if missing:  # derived metrics the optimizer computes itself: not an error
        session.output.note(f"no driver describes {', '.join(missing)}; asked for anyway "
                            "(the optimizer may derive them)")
    relay = ProgressRelay(session.output, SlowestDriver(job.names),
                          progress_interval(job.config.progress_interval,
                                            session.policy.line_limit))
    if session.liveness is not None:
        session.liveness.use(relay.repeat_last)
    run = _Measurement(job, session, owned_by(owner, job.request.names), relay)
    run.set_overall_limit()
    # The descriptions may have used up most of servo's patience with our silence: the
    # measurement must not add a driver's whole line limit to it.
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
        session.stop((), [f.line() for f in run.failures] + because)
    if run.failures:
        return finish_with_failures(session.output, run.failures, because, keys=(
            {"canceled_drivers": canceled} if canceled else None))
    try:
        final = merge_results([(n, run.results[n]) for n in job.names if n in run.results])
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

