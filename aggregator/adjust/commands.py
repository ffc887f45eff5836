"""The adjust front-end's commands, chosen by the job: each prints exactly one final
line (JSON for query and adjust) and returns the exit code."""

from __future__ import annotations

from pathlib import Path

from aggregator.adjust.apply import adjust
from aggregator.adjust.calls import AdjustJob, Command
from aggregator.adjust.dry_run import dry_run
from aggregator.adjust.queries import query, version
from aggregator.supervision.session import Session


async def run_job(job: AdjustJob, session: Session, servo_root: Path) -> int:
    if job.command is Command.VERSION:
        return await version(job, session)
    if job.command is Command.QUERY:
        return await query(job, session)
    if job.command is Command.DRY_RUN:
        return await dry_run(job, session, servo_root)
    return await adjust(job, session)
