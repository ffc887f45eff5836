"""The adjust front-end's commands, chosen by the job: each prints exactly one final
line (JSON for query and adjust) and returns the exit code.

Each command's own modules are imported when it is chosen: servo starts a process for
every call, and a query should not pay for the adjust's plan or for --dry-run."""

from __future__ import annotations

from pathlib import Path

from aggregator.adjust.calls import AdjustJob, Command
from aggregator.adjust.queries import query, version
from aggregator.supervision.session import Session


async def run_job(job: AdjustJob, session: Session, servo_root: Path) -> int:
    if job.command is Command.VERSION:
        return await version(job, session)
    if job.command is Command.QUERY:
        return await query(job, session)
    if job.command is Command.DRY_RUN:
        from aggregator.adjust.dry_run import dry_run

        return await dry_run(job, session, servo_root)
    from aggregator.adjust.apply import adjust

    return await adjust(job, session)
