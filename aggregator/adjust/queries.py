"""`--version` and `--query`, and the survey of every driver's descriptor an adjust
starts with."""

from __future__ import annotations

from dataclasses import dataclass, field

from aggregator.adjust.calls import AdjustJob
from aggregator.protocol.descriptor import Descriptor, DescriptorShapeError, merge, normalize
from aggregator.protocol.result import DriverFailure, judge
from aggregator.protocol.vocabulary import Call, Reason, Status
from aggregator.supervision.final import finish_with_failures
from aggregator.supervision.progress_relay import ProgressRelay
from aggregator.supervision.session import Session
from aggregator.supervision.spec import CallOutcome, CallSpec
from aggregator.supervision.versions import report_versions


async def version(job: AdjustJob, session: Session) -> int:
    return await report_versions(session, [job.info_call(d) for d in job.drivers])


@dataclass
class Survey:
    """What the drivers reported about themselves before an adjust (or for --query)."""

    descriptors: list[tuple[str, Descriptor]] = field(default_factory=list)
    failures: list[DriverFailure] = field(default_factory=list)
    #: not queried: servo stopped the run before their turn (not a failure of theirs)
    not_started: list[str] = field(default_factory=list)


def read_descriptor(outcome: CallOutcome, session: Session) -> Descriptor | DriverFailure:
    failure = judge(outcome, session.environment.stderr_mode)
    if failure is not None:
        return failure
    assert outcome.result is not None
    try:
        return normalize(outcome.result)
    except DescriptorShapeError as exc:
        return DriverFailure(outcome.driver.name, Call.QUERY, Status.FAILED, Reason.BAD_OUTPUT,
                             f"query: output is not a descriptor: {exc}")


async def survey(job: AdjustJob, session: Session,
                 relay: ProgressRelay | None = None) -> Survey:
    """Every driver's --query, with a keep-alive line between drivers when servo needs one;
    before an adjust, the drivers' progress through `relay` (see Session.call_all)."""
    found = Survey()
    count = len(job.drivers)
    asked: list[str] = []

    def between(spec: CallSpec) -> None:
        asked.append(spec.driver.name)
        # A pending progress line is one: it goes out within the interval.
        if len(asked) < count and (relay is None or not relay.pending):
            session.keepalive(f"queried {len(asked)} of {count} drivers",
                              0 if relay is None else relay.percent)

    outcomes = await session.call_all([job.query_call(d) for d in job.drivers],
                                      parallel=job.config.parallel_queries, between=between,
                                      relay=relay)
    for outcome in outcomes:
        if outcome.kept_from_starting_by_the_stop:
            found.not_started.append(outcome.driver.name)
            continue
        got = read_descriptor(outcome, session)
        if isinstance(got, DriverFailure):
            found.failures.append(got)
        else:
            found.descriptors.append((outcome.driver.name, got))
    return found


async def query(job: AdjustJob, session: Session) -> int:
    """All drivers' descriptors merged into one JSON line."""
    found = await survey(job, session)
    session.stop_if_stopping()
    if found.failures:
        return finish_with_failures(session.output, found.failures)
    merged, _ = merge(found.descriptors)
    session.output.json_line(merged)
    return 0
