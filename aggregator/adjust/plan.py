"""Who gets what: the drivers' descriptors, and the request split by owner. Shared by
adjust and --dry-run, so that a rehearsal fails exactly as the real thing would."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from aggregator.adjust.calls import AdjustJob
from aggregator.adjust.queries import Survey, survey
from aggregator.protocol.descriptor import Ownership, merge, split_request
from aggregator.protocol.result import AdjustStanding, DriverFailure
from aggregator.protocol.vocabulary import Reason
from aggregator.supervision.final import could_not_ask
from aggregator.supervision.progress_relay import ProgressRelay
from aggregator.supervision.session import Session


@dataclass
class AdjustPlan:
    """{driver: its components}, in driver order, and what was there before."""

    shares: dict[str, dict[str, Any]]
    ownership: Ownership
    skipped: list[str]

    def rollback_components(self, driver: str) -> dict[str, Any]:
        """The settings this run changed on `driver`, at the values its query reported."""
        components: dict[str, Any] = {}
        for component, body in self.shares[driver].items():
            for setting in body.get("settings", {}):
                current = self.ownership.current((component, setting))
                target = components.setdefault(component, {"settings": {}})
                target["settings"][setting] = {"value": current.get("value")}
        return components


async def plan_adjust(job: AdjustJob, session: Session,
                      relay: ProgressRelay | None = None) -> AdjustPlan:
    """Query every driver and split the request; raises before anything is changed, and
    stops the run if servo stopped it meanwhile. `relay`: where the queries' progress
    goes (an adjust's, not a rehearsal's)."""
    assert job.request is not None
    found = await survey(job, session, relay)
    if session.control.stopping:
        _stopped_in_queries(job, session, found)
    if found.failures:
        raise could_not_ask(found.failures, "setting", "nothing was changed",
                            Reason.QUERY_FAILED)
    _, ownership = merge(found.descriptors)
    order = [d.name for d in job.drivers]
    shares = split_request(job.request.components, ownership, order)
    return AdjustPlan(shares, ownership, [n for n in order if n not in shares])


def _stopped_in_queries(job: AdjustJob, session: Session, found: Survey) -> NoReturn:
    """Servo stopped the run while the drivers were queried: the same account as a stop
    during the adjusts (nothing was changed), naming the queries it cut short and the
    drivers whose query had failed on its own before."""
    interrupted = session.control.interrupted
    failures = [f for f in found.failures if f.driver not in interrupted]
    cut_short = [f for f in found.failures if f.driver in interrupted]
    failed = {f.driver for f in failures}
    stopped(session, AdjustStanding(
        not_started=[d.name for d in job.drivers if d.name not in failed],
        failed=[f.driver for f in failures], during_queries=True),
        failures, cut_short, [], running=interrupted)


def stopped(session: Session, standing: AdjustStanding, failures: Sequence[DriverFailure],
            cut_short: Sequence[DriverFailure], extra: Sequence[str], *,
            running: Sequence[str] | None = None,
            failed_drivers: Sequence[str] | None = None) -> NoReturn:
    """End a stopped or canceled adjust, whether the stop came during the queries, the
    adjusts or a rollback: its final line says what the application holds now
    (standing), then each failure and the interrupted drivers' own words, with their
    stderr. `running`: the drivers the stop cut short (default: the interrupted adjusts);
    `failed_drivers`: those that failed on their own (default: `failures`').
    No rollback runs after a stop, whatever on_failure says: servo asked that no
    further driver start, it may be gone already (SIGTERM, its exit), and a rollback is
    a driver call that could outlast its patience; the optimizer's next adjust sets
    every setting anew, and this line tells the operator what holds until then."""
    session.stop_with_failures(standing.interrupted if running is None else running,
                               failures, cut_short=cut_short, before=standing.lines(),
                               extra=extra, failed_drivers=failed_drivers)
