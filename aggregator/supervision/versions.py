"""`--version` of any front-end: the aggregator's version and each driver's (by file name:
which is which must be plain), asked of their --info all at once, within one budget (a
one-line answer cannot be kept alive)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aggregator.protocol.result import DriverFailure, fold, judge
from aggregator.protocol.text import clip, one_line, version_line
from aggregator.protocol.vocabulary import Call, Reason, Status
from aggregator.supervision.session import Session
from aggregator.supervision.spec import CallSpec


def reported_version(result: Mapping[str, Any] | None) -> str | None:
    """The version a driver's --info gave (text or a number), as --version shows it;
    None when it gave none (--version then names the driver failing)."""
    reported = (result or {}).get("version")
    return str(reported) if isinstance(reported, str | int | float) else None


async def report_versions(session: Session, info_calls: Sequence[CallSpec]) -> int:
    """`servo-agg <version> (<driver versions>)`; a failing driver is named, and why is
    said on stderr. Stopped (SIGTERM, servo's cancel), the line still shows what was
    answered, a driver the stop cut is `interrupted`, and the run ends as any stopped
    run does (its final line; 128+signal for a termination)."""
    outcomes = await session.call_all(info_calls, parallel=True,
                                      deadline=session.answer_deadline())
    shown: list[str] = []
    failures: list[DriverFailure] = []
    stderr_mode = session.environment.stderr_mode
    for outcome in outcomes:
        failure = judge(outcome, stderr_mode)
        reported = reported_version(outcome.result)
        name = clip(one_line(outcome.driver.name))  # a name is data too
        if failure is None and reported is not None:
            shown.append(f"{name} {clip(one_line(reported))}")  # one line, whatever
            continue
        if outcome.cut_by_the_stop:  # no fault of the driver's
            shown.append(f"{name}: interrupted")
            continue
        failures.append(failure or DriverFailure(
            outcome.driver.name, Call.INFO, Status.FAILED, Reason.BAD_OUTPUT,
            "info: gave no version", outcome.stderr.for_message(stderr_mode)))
        shown.append(f"{name}: failing")
    session.output.report([version_line(shown)])
    if failures:  # why, on stderr: the same fold as any failure, stderr excerpts included
        session.output.note(fold(failures)["message"])
    session.stop_if_stopping()
    return 1 if failures else 0
