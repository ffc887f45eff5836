"""The measure front-end's commands, chosen by the job: each prints exactly one final
line (JSON for describe and measure) and returns the exit code."""

from __future__ import annotations

from aggregator.measure.calls import MeasureCommand, MeasureJob
from aggregator.measure.describe import describe
from aggregator.measure.dry_run import dry_run
from aggregator.measure.run import measure
from aggregator.supervision.session import Session
from aggregator.supervision.versions import report_versions


async def run_measure_job(job: MeasureJob, session: Session) -> int:
    if job.command is MeasureCommand.VERSION:
        return await report_versions(session, [job.info_call(d) for d in job.drivers])
    if job.command is MeasureCommand.DESCRIBE:
        return await describe(job, session)
    if job.command is MeasureCommand.DRY_RUN:
        return await dry_run(job, session)
    return await measure(job, session)
