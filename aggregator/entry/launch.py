"""Everything before trio: arguments, environment, config, drivers and the request, all
checked before any driver starts; then the job handed to a Run."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.adjust.calls import AdjustJob, Command
from aggregator.entry.cmdline import build_parser, read_request
from aggregator.protocol.environment import read_environment
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.request import AdjustRequest, parse_request
from aggregator.protocol.vocabulary import Reason, Status
from aggregator.root.config import load_config
from aggregator.root.discovery import find_drivers
from aggregator.supervision.output import Output, wants_live_display
from aggregator.supervision.run import Command as RunCommand
from aggregator.supervision.run import Run
from aggregator.supervision.signals import EarlySignals, StoppedEarly

if TYPE_CHECKING:
    from aggregator.supervision.session import Session


def run(argv: list[str], *, stdin_closed: bool = False, servo_pid: int | None = None) -> int:
    """The command's exit code; never 0 when what it wrote could not all reach servo.
    `servo_pid`: our parent at start, watched so that its exit stops the run."""
    early = EarlySignals()
    early.install()
    output = Output.for_servo(servo_pid)  # non-blocking, on a file description of its own
    try:
        code = _run(argv, early, output, stdin_closed)
    finally:
        early.uninstall()
        output.close()
        with contextlib.suppress(OSError, ValueError):  # /dev/full, closed
            sys.stdout.flush()
    return 1 if code == 0 and output.lost is not None else code


def _command(version: bool, query: bool, dry_run: bool) -> Command:
    if version:
        return Command.VERSION
    if query:
        return Command.QUERY
    return Command.DRY_RUN if dry_run else Command.ADJUST


def _run(argv: list[str], early: EarlySignals, output: Output, stdin_closed: bool) -> int:
    try:
        args = build_parser().parse_args(argv)
        root = Path(os.getcwd())
        if args.json and not args.dry_run:
            raise AggregatorError(Reason.BAD_USAGE, "--json goes with --dry-run only")
        if args.check:
            from aggregator.tools.check import run_check

            return run_check(root, args.app, output, verbose=args.verbose, early=early)
        environment = read_environment(os.environ)
        config = load_config(root)
        drivers = find_drivers(root / config.drivers_dir, config.disabled)
        command = _command(args.version, args.query, args.dry_run)
        request: AdjustRequest | None = None
        if command in (Command.ADJUST, Command.DRY_RUN):
            if not args.app:
                raise AggregatorError(Reason.BAD_USAGE, "no application id given; servo "
                                      "calls 'adjust <app>' with the request on stdin")
            if stdin_closed:  # /dev/null stands in for it: nothing to read
                raise AggregatorError(Reason.BAD_INPUT, "adjust request: stdin was closed, "
                                      "so there is no request; no driver was run")
            with early.interrupting():
                # within the line limit, not T: servo must hear the error while it listens
                stdin = read_request(environment.line_limit)
            request = parse_request(stdin)  # a bad request is refused before any driver
    except AggregatorError as err:
        output.error(err)
        return 1
    except StoppedEarly as stop:
        output.json_line({"status": Status.ABORTED, "reason": Reason.TERMINATED,
                          "message": f"servo-agg received {stop} while reading the request; "
                                     "no driver was started"})
        return 128 + stop.signum
    job = AdjustJob(command, args.app, config, tuple(drivers), request, as_json=args.json)
    with Run(servo_root=root, env=os.environ, environment=environment,
             kill_grace=config.kill_grace, cancel_grace=config.cancel_grace, output=output,
             early=early, verbose=args.verbose, heartbeat=command is not Command.DRY_RUN,
             live_display=command is Command.ADJUST and wants_live_display(sys.stderr,
                                                                           os.environ),
             driver_order=[d.name for d in drivers]) as run:
        run.start_early(job.opening_calls())
        return run.execute(_job_command(job, root))


def _job_command(job: AdjustJob, root: Path) -> RunCommand:
    async def command(session: Session) -> int:
        from aggregator.adjust.commands import run_job  # under trio, once it is loaded

        return await run_job(job, session, root)

    return command
