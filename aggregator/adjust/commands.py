"""The commands servo calls: --version, --query, and adjust.

Each returns the exit code; each prints exactly one final line (JSON for query and adjust).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from aggregator import PRODUCT, __version__
from aggregator.protocol.descriptor import (
    Descriptor,
    DescriptorShapeError,
    Ownership,
    merge,
    normalize,
    split_request,
)
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.progress import ProgressRelay, coalesce_window
from aggregator.protocol.request import AdjustRequest, driver_request, parse_request
from aggregator.protocol.result import DriverFailure, fold, judge
from aggregator.protocol.user_text import clip, one_line
from aggregator.protocol.validation import show
from aggregator.supervision.call import CallOutcome, CallSpec
from aggregator.supervision.display import Display
from aggregator.supervision.run import RunContext


async def version(ctx: RunContext) -> int:
    """`servo-agg <version> (<driver versions>)`, asking each driver's --info."""
    args = ["--info"] + ([ctx.app] if ctx.app else [])
    # All at once and within one budget: a one-line answer cannot be kept alive.
    outcomes = await ctx.call_all("info", args, parallel=True, deadline=ctx.answer_deadline())
    shown: list[str] = []
    failed = 0
    for outcome in outcomes:
        failure = judge(outcome, ctx.environment.stderr_mode)
        reported = (outcome.result or {}).get("version")
        if failure is None and isinstance(reported, str | int | float):
            shown.append(clip(one_line(str(reported))))  # one line, whatever it says
            continue
        failed += 1
        why = failure.message if failure else "--info gave no version"
        shown.append(f"{outcome.driver.name}: failing")
        ctx.output.note(f"{outcome.driver.name}: {why}")
    ctx.output.write_line(f"{PRODUCT} {__version__} ({', '.join(shown)})")
    return 1 if failed else 0


@dataclass
class Survey:
    """What the drivers reported about themselves before an adjust (or for --query)."""

    descriptors: list[tuple[str, Descriptor]] = field(default_factory=list)
    failures: list[DriverFailure] = field(default_factory=list)


def read_descriptor(outcome: CallOutcome, ctx: RunContext) -> Descriptor | DriverFailure:
    failure = judge(outcome, ctx.environment.stderr_mode)
    if failure is not None:
        return failure
    assert outcome.result is not None
    try:
        return normalize(outcome.result)
    except DescriptorShapeError as exc:
        return DriverFailure(outcome.driver.name, "query", "failed", "bad-output",
                             f"query: output is not a descriptor: {exc}")


async def survey(ctx: RunContext, percent: int = 0) -> Survey:
    """Every driver's --query, with a keep-alive line between drivers when servo needs one."""
    found = Survey()
    count = len(ctx.drivers)
    asked: list[str] = []

    def between(driver: Any) -> None:
        asked.append(driver.name)
        if len(asked) < count:
            ctx.keepalive(f"queried {len(asked)} of {count} drivers", percent)

    app = [ctx.app] if ctx.app else []  # `adjust --query` by hand: no invented app id
    outcomes = await ctx.call_all("query", ["--query", *app], between=between)
    for outcome in outcomes:
        got = read_descriptor(outcome, ctx)
        if isinstance(got, DriverFailure):
            found.failures.append(got)
        else:
            found.descriptors.append((outcome.driver.name, got))
    return found


def stopped_result(ctx: RunContext, running: str | None) -> tuple[dict[str, Any], int]:
    """The final line when servo stopped us: aborted (terminate) or canceled (SIGUSR1)."""
    control = ctx.sup.control
    names = [running] if running else control.interrupted  # e.g. a query, a rollback
    where = (f" while {', '.join(names)} {'was' if len(names) == 1 else 'were'} running"
             if names else "")
    if control.terminated_by is not None:
        name = signal.Signals(control.terminated_by).name
        return ({"status": "aborted", "reason": "terminated",
                 "message": f"servo-agg received {name}{where}; the driver was stopped and "
                            "no further driver was started"}, 128 + control.terminated_by)
    return ({"status": "canceled", "reason": "canceled",
             "message": f"canceled by servo{where}; no further driver was started"}, 1)


def finish_stopped(ctx: RunContext) -> int:
    """Write the stopped run's final line (no adjust driver was running) and return its
    exit code."""
    result, code = stopped_result(ctx, None)
    ctx.output.json_line(result)
    return code


def finish_with_failures(ctx: RunContext, failures: list[DriverFailure],
                         extra: list[str] | None = None,
                         extra_reasons: list[str] | None = None) -> int:
    result = fold(failures, extra or [])
    if failures and extra_reasons:
        result["reason"] = "; ".join([result["reason"], *extra_reasons])
    ctx.output.json_line(result)
    if failures:
        ctx.output.note(f"error ({result['reason']}): " + result["message"].split("\n")[0]
                        + (f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""))
        return 1
    return 0


async def query(ctx: RunContext) -> int:
    """All drivers' descriptors merged into one JSON line."""
    found = await survey(ctx)
    if ctx.sup.control.stopping:
        return finish_stopped(ctx)
    if found.failures:
        return finish_with_failures(ctx, found.failures)
    merged, _ = merge(found.descriptors)
    ctx.output.json_line(merged)
    return 0


@dataclass
class AdjustPlan:
    """Who gets what: {driver: its components}, in driver order, and what was there before."""

    shares: dict[str, dict[str, Any]]
    ownership: Ownership
    skipped: list[str]


async def plan_adjust(ctx: RunContext, request: AdjustRequest) -> AdjustPlan:
    """Query every driver and split the request; raises before anything is changed."""
    found = await survey(ctx)
    if found.failures:
        names = ", ".join(f.driver for f in found.failures)
        details = "\n".join(f.line() for f in found.failures)
        raise AggregatorError(
            found.failures[0].reason if len(found.failures) == 1 else "query-failed",
            f"could not learn which driver owns which setting: {names} could not be asked; "
            f"nothing was changed\n{details}",
        )
    _, ownership = merge(found.descriptors)
    order = [d.name for d in ctx.drivers]
    shares = split_request(request.components, ownership, order)
    return AdjustPlan(shares, ownership, [n for n in order if n not in shares])


async def plan_or_stop(ctx: RunContext, stdin: bytes) -> tuple[AdjustRequest, AdjustPlan] | int:
    """What adjust and --dry-run share: the request, checked; the plan; or, when servo
    stopped us meanwhile, the final line written and its exit code."""
    request = parse_request(stdin)
    plan = await plan_adjust(ctx, request)
    if ctx.sup.control.stopping:
        return finish_stopped(ctx)
    return request, plan


def rollback_components(plan: AdjustPlan, driver: str) -> dict[str, Any]:
    """The settings this run changed on `driver`, at the values its query reported."""
    components: dict[str, Any] = {}
    for component, body in plan.shares[driver].items():
        for setting in body.get("settings", {}):
            current = plan.ownership.current((component, setting))
            target = components.setdefault(component, {"settings": {}})
            target["settings"][setting] = {"value": current.get("value")}
    return components


def _adjust_header(ctx: RunContext, plan: AdjustPlan) -> str:
    count = len(plan.shares)
    return (f"{PRODUCT}: adjusting {ctx.app}: {count} driver{'s' if count != 1 else ''} "
            f"to run (on_failure: {ctx.config.on_failure})")


def _on_progress(relay: ProgressRelay, display: Display, driver: str,
                 message: dict[str, Any]) -> None:
    relay.driver_progress(driver, message)
    display.progress(driver, message)


async def adjust(ctx: RunContext, stdin: bytes) -> int:
    planned = await plan_or_stop(ctx, stdin)
    if isinstance(planned, int):
        return planned
    request, plan = planned
    weights = {name: ctx.config.policy(name).weight for name in plan.shares}
    relay = ProgressRelay(ctx.output, weights, coalesce_window(ctx.sup.line_limit))
    display = ctx.display
    policy = ctx.config.on_failure
    failures: list[DriverFailure] = []
    completed: list[str] = []
    extra: list[str] = []
    extra_reasons: list[str] = []
    running: str | None = None
    display.begin(_adjust_header(ctx, plan), list(plan.shares))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay.run_flusher)
            nursery.start_soon(display.run_ticker)
            for name, components in plan.shares.items():
                if ctx.sup.control.stopping or (failures and policy != "continue"):
                    break
                running = name
                driver = next(d for d in ctx.drivers if d.name == name)
                spec = CallSpec(driver, "adjust", (ctx.app,),
                                driver_request(request, components))
                # The queries may have used up most of servo's patience (the survey sends
                # no keep-alive after the last one): the first adjust must not add to it.
                ctx.keepalive(f"{name}: starting", relay.percent)
                display.started(name)
                outcome = await ctx.call(spec, partial(_on_progress, relay, display, name))
                failure = judge(outcome, ctx.environment.stderr_mode)
                relay.driver_done(name, f"{name}: {'done' if failure is None else 'failed'}")
                display.finished(name, failure is None, failure.message if failure else "")
                if failure is not None:
                    failures.append(failure)
                else:
                    completed.append(name)
                if ctx.sup.control.stopping:
                    break
                running = None
            ran = {f.driver for f in failures} | set(completed)
            not_started = [n for n in plan.shares if n not in ran]
            if failures and not_started and not ctx.sup.control.stopping:
                extra.append(f"not started (on_failure: {policy}): {', '.join(not_started)}")
            if failures and policy == "rollback" and not ctx.sup.control.stopping:
                lines, all_restored = await roll_back(ctx, plan, request, completed, relay)
                extra.extend(lines)
                if not all_restored:
                    extra_reasons.append("rollback-failed")
            nursery.cancel_scope.cancel()
    finally:
        display.close()
    if ctx.sup.control.stopping:
        result, code = stopped_result(ctx, running)
        if failures:
            result["message"] += "\n" + "\n".join([f.line() for f in failures] + extra)
        ctx.output.json_line(result)
        ctx.output.note(f"{result['status']}: {result['message'].splitlines()[0]}")
        return code
    return finish_with_failures(ctx, failures, extra, extra_reasons)


def _rollback_progress(relay: ProgressRelay, display: Display, driver: str,
                       message: dict[str, Any]) -> None:
    """A rolling-back driver's progress holds the overall percentage: it never goes back."""
    text = message.get("message")
    relay.hold(f"rollback: {driver}: {text}" if isinstance(text, str) and text
               else f"rollback: {driver}")
    display.progress(driver, message)


async def roll_back(ctx: RunContext, plan: AdjustPlan, request: AdjustRequest,
                    completed: list[str], relay: ProgressRelay) -> tuple[list[str], bool]:
    """Put every driver that completed back to its pre-adjust values, newest first.

    Returns a line per driver for the final message, and whether every rollback worked.
    """
    if not completed:
        return ["rollback: nothing to roll back (no driver had completed)"], True
    lines: list[str] = []
    all_restored = True
    for name in reversed(completed):
        if ctx.sup.control.stopping:
            lines.append(f"rollback of {name}: not attempted (servo-agg was stopped)")
            all_restored = False
            continue
        driver = next(d for d in ctx.drivers if d.name == name)
        components = rollback_components(plan, name)
        restored = ", ".join(f"{c}.{s}={show(v['value'])}" for c, body in components.items()
                             for s, v in body["settings"].items())
        relay.hold(f"rollback: {name}")
        ctx.display.started(name, "rollback")
        spec = CallSpec(driver, "rollback", (ctx.app,), driver_request(request, components))
        outcome = await ctx.call(spec, partial(_rollback_progress, relay, ctx.display, name))
        failure = judge(outcome, ctx.environment.stderr_mode)
        ctx.display.finished(name, failure is None, failure.message if failure else "")
        if failure is None:
            lines.append(f"rollback of {name}: ok, restored {restored}")
            continue
        all_restored = False
        lines.append(f"rollback of {name}: FAILED ({failure.message}); "
                     f"{restored} may not be restored")
        if failure.stderr:
            lines.append(f"--- {name} rollback stderr ---\n{failure.stderr}")
    return lines, all_restored
