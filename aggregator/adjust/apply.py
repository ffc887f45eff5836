"""`adjust app`: each driver's share of the request, one driver at a time, in order;
progress folded into one stream; on a failure, the policy (continue, stop, rollback)."""

from __future__ import annotations

from functools import partial
from typing import Any, NoReturn

import trio

from aggregator import PRODUCT
from aggregator.adjust.calls import AdjustJob
from aggregator.adjust.plan import AdjustPlan, plan_adjust
from aggregator.protocol.result import AdjustStanding, DriverFailure, fold, judge
from aggregator.protocol.validation import show
from aggregator.protocol.vocabulary import Call, Reason
from aggregator.supervision.display import Display
from aggregator.supervision.facts import RollbackStep
from aggregator.supervision.final import finish_with_failures
from aggregator.supervision.progress_relay import (
    ProgressRelay,
    WeightedShares,
    progress_interval,
)
from aggregator.supervision.session import Session


def _adjust_header(job: AdjustJob, plan: AdjustPlan) -> str:
    count = len(plan.shares)
    return (f"{PRODUCT}: adjusting {job.app}: {count} driver{'s' if count != 1 else ''} "
            f"to run (on_failure: {job.config.on_failure})")


def _on_progress(relay: ProgressRelay, display: Display, driver: str,
                 message: dict[str, Any]) -> None:
    relay.driver_progress(driver, message)
    display.progress(driver, message)


async def adjust(job: AdjustJob, session: Session) -> int:
    plan = await plan_adjust(job, session)
    weights = {name: job.config.policy(name).weight for name in plan.shares}
    relay = ProgressRelay(session.output, WeightedShares(weights),
                          progress_interval(job.config.progress_interval,
                                            session.policy.line_limit))
    display = session.display
    control = session.control
    policy = job.config.on_failure
    failures: list[DriverFailure] = []
    cut_short: list[DriverFailure] = []  # by servo's stop or cancel, not failed on their own
    completed: list[str] = []
    rolled_back: list[str] = []
    extra: list[str] = []
    extra_reasons: list[str] = []
    if session.liveness is not None:
        session.liveness.use(relay.repeat_last)
    display.begin(_adjust_header(job, plan), list(plan.shares))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay.run_flusher)
            nursery.start_soon(display.run_ticker)
            for name, components in plan.shares.items():
                if control.stopping or (failures and policy != "continue"):
                    break
                spec = job.change_call(job.driver(name), components)
                # The queries may have used up most of servo's patience (the survey sends
                # no keep-alive after the last one): the first adjust must not add to it.
                # A pending progress line is one: it goes out within the interval, and a
                # keep-alive now would let it follow, stale, after this newer line.
                if not relay.pending:
                    session.keepalive(f"{name}: starting", relay.percent)
                display.started(name)
                outcome = await session.call(spec, partial(_on_progress, relay, display, name))
                failure = judge(outcome, session.environment.stderr_mode)
                relay.driver_done(name, f"{name}: {'done' if failure is None else 'failed'}")
                display.finished(name, failure is None, failure.message if failure else "")
                if failure is not None and control.stopping and name in control.interrupted:
                    cut_short.append(failure)
                elif failure is not None:
                    failures.append(failure)
                else:
                    completed.append(name)
                if control.stopping:
                    break
            ran = {f.driver for f in failures + cut_short} | set(completed)
            not_started = [n for n in plan.shares if n not in ran]
            if failures and not_started and not control.stopping:
                extra.append(f"not started (on_failure: {policy}): {', '.join(not_started)}")
            # Never after a stop: servo asked that no further driver run (see stopped()).
            if failures and policy == "rollback" and not control.stopping:
                lines, rolled_back = await roll_back(job, session, plan, completed, relay)
                extra.extend(lines)
                if rolled_back != completed:
                    extra_reasons.append(Reason.ROLLBACK_FAILED)
            nursery.cancel_scope.cancel()
    finally:
        display.close()
    if control.stopping:
        stopped(session, AdjustStanding(
            completed=[n for n in completed if n not in rolled_back],
            interrupted=[f.driver for f in cut_short], not_started=not_started,
            failed=[f.driver for f in failures], rolled_back=rolled_back),
            failures + cut_short, extra)
    return finish_with_failures(session.output, failures, extra, extra_reasons)


def stopped(session: Session, standing: AdjustStanding, failures: list[DriverFailure],
            extra: list[str]) -> NoReturn:
    """End a stopped or canceled adjust: its final line says what the application holds
    now (standing), then each failure and the interrupted drivers' own words, with their
    stderr. No rollback runs after a stop, whatever on_failure says: servo asked that no
    further driver start, it may be gone already (SIGTERM, its exit), and a rollback is
    a driver call that could outlast its patience; the optimizer's next adjust sets
    every setting anew, and this line tells the operator what holds until then."""
    folded = fold(failures, extra)["message"].split("\n") if failures else list(extra)
    session.stop(standing.interrupted, standing.lines() + folded, standing.failed)


def _rollback_progress(relay: ProgressRelay, display: Display, driver: str,
                       message: dict[str, Any]) -> None:
    """A rolling-back driver's progress holds the overall percentage: it never goes back."""
    text = message.get("message")
    relay.hold(f"rollback: {driver}: {text}" if isinstance(text, str) and text
               else f"rollback: {driver}", reported=True)
    display.progress(driver, message)


async def roll_back(job: AdjustJob, session: Session, plan: AdjustPlan,
                    completed: list[str], relay: ProgressRelay) -> tuple[list[str], list[str]]:
    """Put every driver that completed back to its pre-adjust values, newest first.

    Returns a line per driver for the final message, and the drivers restored, in driver
    order (all of `completed` when every rollback worked).
    """
    if not completed:
        return ["rollback: nothing to roll back (no driver had completed)"], []
    lines: list[str] = []
    restored_drivers: list[str] = []
    steps = session.facts.rollback  # the run's record
    for name in reversed(completed):
        components = plan.rollback_components(name)
        values = {f"{c}.{s}": v["value"] for c, body in components.items()
                  for s, v in body["settings"].items()}
        if session.control.stopping:
            lines.append(f"rollback of {name}: not attempted (servo-agg was stopped)")
            steps.append(RollbackStep(name, "not attempted", values, "servo-agg was stopped"))
            continue
        restored = ", ".join(f"{key}={show(value)}" for key, value in values.items())
        relay.hold(f"rollback: {name}")
        session.display.started(name, "rollback")
        spec = job.change_call(job.driver(name), components, Call.ROLLBACK)
        outcome = await session.call(spec, partial(_rollback_progress, relay, session.display,
                                                   name))
        failure = judge(outcome, session.environment.stderr_mode)
        session.display.finished(name, failure is None, failure.message if failure else "")
        steps.append(RollbackStep(name, "restored" if failure is None else "failed", values,
                                  "" if failure is None else failure.message))
        if failure is None:
            lines.append(f"rollback of {name}: ok, restored {restored}")
            restored_drivers.insert(0, name)
            continue
        lines.append(f"rollback of {name}: FAILED ({failure.message}); "
                     f"{restored} may not be restored")
        if failure.stderr:
            lines.append(f"--- {name} rollback stderr ---\n{failure.stderr}")
    return lines, restored_drivers
