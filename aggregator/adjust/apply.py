"""`adjust app`: each driver's share of the request, one driver at a time, in order;
progress folded into one stream; on a failure, the policy (continue, stop, rollback)."""

from __future__ import annotations

from functools import partial
from typing import Any

import trio

from aggregator import PRODUCT
from aggregator.adjust.calls import AdjustJob
from aggregator.adjust.plan import AdjustPlan, plan_adjust
from aggregator.protocol.result import DriverFailure, judge
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
    completed: list[str] = []
    extra: list[str] = []
    extra_reasons: list[str] = []
    running: str | None = None
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
                running = name
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
                if failure is not None:
                    failures.append(failure)
                else:
                    completed.append(name)
                if control.stopping:
                    break
                running = None
            ran = {f.driver for f in failures} | set(completed)
            not_started = [n for n in plan.shares if n not in ran]
            if failures and not_started and not control.stopping:
                extra.append(f"not started (on_failure: {policy}): {', '.join(not_started)}")
            if failures and policy == "rollback" and not control.stopping:
                lines, all_restored = await roll_back(job, session, plan, completed, relay)
                extra.extend(lines)
                if not all_restored:
                    extra_reasons.append(Reason.ROLLBACK_FAILED)
            nursery.cancel_scope.cancel()
    finally:
        display.close()
    if control.stopping:
        session.stop(running, [f.line() for f in failures] + extra if failures else [])
    return finish_with_failures(session.output, failures, extra, extra_reasons)


def _rollback_progress(relay: ProgressRelay, display: Display, driver: str,
                       message: dict[str, Any]) -> None:
    """A rolling-back driver's progress holds the overall percentage: it never goes back."""
    text = message.get("message")
    relay.hold(f"rollback: {driver}: {text}" if isinstance(text, str) and text
               else f"rollback: {driver}", reported=True)
    display.progress(driver, message)


async def roll_back(job: AdjustJob, session: Session, plan: AdjustPlan,
                    completed: list[str], relay: ProgressRelay) -> tuple[list[str], bool]:
    """Put every driver that completed back to its pre-adjust values, newest first.

    Returns a line per driver for the final message, and whether every rollback worked.
    """
    if not completed:
        return ["rollback: nothing to roll back (no driver had completed)"], True
    lines: list[str] = []
    all_restored = True
    steps = session.facts.rollback  # the run's record
    for name in reversed(completed):
        components = plan.rollback_components(name)
        values = {f"{c}.{s}": v["value"] for c, body in components.items()
                  for s, v in body["settings"].items()}
        if session.control.stopping:
            lines.append(f"rollback of {name}: not attempted (servo-agg was stopped)")
            steps.append(RollbackStep(name, "not attempted", values, "servo-agg was stopped"))
            all_restored = False
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
            continue
        all_restored = False
        lines.append(f"rollback of {name}: FAILED ({failure.message}); "
                     f"{restored} may not be restored")
        if failure.stderr:
            lines.append(f"--- {name} rollback stderr ---\n{failure.stderr}")
    return lines, all_restored
