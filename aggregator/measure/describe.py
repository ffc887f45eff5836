"""`--describe`: every driver's metrics, asked all at once, merged; and the catalogue a
measure starts with, to learn who owns which metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aggregator.measure.calls import MeasureJob
from aggregator.protocol.measure import MetricsShapeError, described_metrics, merge_descriptions
from aggregator.protocol.result import DriverFailure, judge
from aggregator.protocol.vocabulary import Call, Reason, Status
from aggregator.supervision.final import could_not_ask, finish_with_failures
from aggregator.supervision.progress_relay import ProgressRelay
from aggregator.supervision.session import Session


@dataclass
class Catalogue:
    """What each driver said it measures."""

    described: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failures: list[DriverFailure] = field(default_factory=list)

    def merged(self) -> tuple[dict[str, Any], dict[str, str]]:
        """All metrics, and who owns each; a metric two drivers describe is an error."""
        return merge_descriptions(self.described)


async def survey(job: MeasureJob, session: Session,
                 relay: ProgressRelay | None = None) -> Catalogue:
    """Every driver's --describe, concurrently, each supervised; before a measure, the
    drivers' progress through `relay` (see Session.call_all)."""
    found = Catalogue()
    outcomes = await session.call_all([job.describe_call(d) for d in job.drivers],
                                      parallel=True, relay=relay)
    for outcome in outcomes:
        failure = judge(outcome, session.environment.stderr_mode)
        if failure is None:
            assert outcome.result is not None
            try:
                found.described.append((outcome.driver.name,
                                         described_metrics(outcome.result)))
                continue
            except MetricsShapeError as exc:
                failure = DriverFailure(outcome.driver.name, Call.DESCRIBE, Status.FAILED,
                                        Reason.BAD_OUTPUT,
                                        f"describe: output is not a metrics description: "
                                        f"{exc}")
        found.failures.append(failure)
    return found


async def catalogue(job: MeasureJob, session: Session,
                    relay: ProgressRelay | None = None) -> tuple[dict[str, Any],
                                                                 dict[str, str]]:
    """Who owns which metric, before a measure (or its dry run); raises before any
    measure starts if a driver could not say, and stops if servo stopped the run.
    `relay`: where the describes' progress goes (a measure's, not a rehearsal's)."""
    found = await survey(job, session, relay)
    session.stop_if_stopping()
    if found.failures:
        raise could_not_ask(found.failures, "metric", "no measurement was started",
                            Reason.DESCRIBE_FAILED)
    return found.merged()


async def describe(job: MeasureJob, session: Session) -> int:
    """All drivers' metrics as one `{"status": "ok", "metrics": {...}}` line."""
    found = await survey(job, session)
    session.stop_if_stopping()
    if found.failures:
        return finish_with_failures(session.output, found.failures)
    merged, _ = found.merged()
    session.output.json_line({"status": Status.OK, "metrics": merged})
    return 0
