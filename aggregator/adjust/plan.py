"""Who gets what: the drivers' descriptors, and the request split by owner. Shared by
adjust and --dry-run, so that a rehearsal fails exactly as the real thing would."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aggregator.adjust.calls import AdjustJob
from aggregator.adjust.queries import survey
from aggregator.protocol.descriptor import Ownership, merge, split_request
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
    if found.failures:
        raise could_not_ask(found.failures, "setting", "nothing was changed",
                            Reason.QUERY_FAILED)
    _, ownership = merge(found.descriptors)
    order = [d.name for d in job.drivers]
    shares = split_request(job.request.components, ownership, order)
    session.stop_if_stopping()
    return AdjustPlan(shares, ownership, [n for n in order if n not in shares])
