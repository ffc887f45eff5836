"""The measure front-end's commands, chosen by the job: each prints exactly one final
line (JSON for describe and measure) and returns the exit code.

Each command's own modules are imported when it is chosen: servo starts a process for
every call, and a describe should not pay for the measure's run or for --dry-run."""

from __future__ import annotations

from aggregator.measure.calls import MeasureCommand, MeasureJob
from aggregator.supervision.session import Session
from aggregator.supervision.versions import report_versions


async def run_measure_job(job: MeasureJob, session: Session) -> int:
    if job.command is MeasureCommand.VERSION:
        return await report_versions(session, [job.info_call(d) for d in job.drivers])
    if job.command is MeasureCommand.DESCRIBE:
        from aggregator.measure.describe import describe

        return await describe(job, session)
    if job.command is MeasureCommand.DRY_RUN:
        from aggregator.measure.dry_run import dry_run

        return await dry_run(job, session)
    from aggregator.measure.run import measure

    return await measure(job, session)
