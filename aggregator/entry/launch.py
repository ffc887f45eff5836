"""Everything before trio: arguments, environment, config, drivers and the request, all
checked before any driver starts; then the front-end's job handed to a Run."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.adjust.calls import AdjustJob, Command
from aggregator.entry.cmdline import build_parser, read_request
from aggregator.measure.calls import MeasureCommand, MeasureJob
from aggregator.protocol.environment import ServoEnvironment, read_environment
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.measure import parse_measure_request
from aggregator.protocol.request import parse_request
from aggregator.protocol.text import version_line
from aggregator.protocol.vocabulary import Reason, Status
from aggregator.root.config import AggregatorConfig, load_config
from aggregator.root.discovery import drivers_among, scan, unrun_programs
from aggregator.root.front_end import FrontEnd, drivers_of
from aggregator.supervision.output import Output, wants_live_display
from aggregator.supervision.run import Command as RunCommand
from aggregator.supervision.run import Run
from aggregator.supervision.signals import EarlySignals, StoppedEarly

if TYPE_CHECKING:
    from aggregator.supervision.session import Session

Job = AdjustJob | MeasureJob


def run(argv: list[str], front: FrontEnd = FrontEnd.ADJUST, *, stdin_closed: bool = False,
        servo_pid: int | None = None, program: str | None = None) -> int:
    """The command's exit code; never 0 when what it wrote could not all reach servo.
    `servo_pid`: our parent at start, watched so that its exit stops the run; `program`:
    the name it was called by, for --help."""
    early = EarlySignals()
    early.install()
    output = Output.for_servo(servo_pid)  # non-blocking, on a file description of its own
    try:
        code = _run(argv, front, early, output, stdin_closed, program)
    finally:
        early.uninstall()
        output.close()
        with contextlib.suppress(OSError, ValueError):  # /dev/full, closed
            sys.stdout.flush()
    return 1 if code == 0 and output.lost is not None else code


def _job(front: FrontEnd, args: argparse.Namespace, config: AggregatorConfig,
         environment: ServoEnvironment, root: Path, early: EarlySignals,
         stdin_closed: bool, output: Output) -> Job:
    """The front-end's job, the request read and checked (before any driver starts)."""
    drivers_dir, disabled = drivers_of(config, front)
    candidates = scan(root / drivers_dir)
    for warning in unrun_programs(drivers_dir, candidates):
        output.warn(warning)
    drivers = tuple(drivers_among(candidates, disabled))
    wants_request = not (args.version or args.query)
    data = b""
    if wants_request:
        if not args.app:
            raise AggregatorError(Reason.BAD_USAGE, f"no application id given; servo calls "
                                  f"'{front} <app>' with the request on stdin")
        if stdin_closed:  # /dev/null stands in for it: nothing to read
            raise AggregatorError(Reason.BAD_INPUT, f"{front} request: stdin was closed, "
                                  "so there is no request; no driver was run")
        with early.interrupting():
            # within the line limit, not T: servo must hear the error while it listens
            data = read_request(environment.line_limit)
    if front is FrontEnd.MEASURE:
        command = (MeasureCommand.VERSION if args.version else MeasureCommand.DESCRIBE
                   if args.query else MeasureCommand.DRY_RUN if args.dry_run
                   else MeasureCommand.MEASURE)
        return MeasureJob(command, args.app, config.measure, drivers,
                          parse_measure_request(data, [d.name for d in drivers])
                          if wants_request else None,
                          as_json=args.json)
    adjust = (Command.VERSION if args.version else Command.QUERY if args.query
              else Command.DRY_RUN if args.dry_run else Command.ADJUST)
    return AdjustJob(adjust, args.app, config, drivers,
                     parse_request(data) if wants_request else None, as_json=args.json)


def _run(argv: list[str], front: FrontEnd, early: EarlySignals, output: Output,
         stdin_closed: bool, program: str | None = None) -> int:
    try:
        args = build_parser(front, program).parse_args(argv)
        if args.verbose:  # every note from here on says when, from the process's start
            output.stamp_notes()
        root = Path(os.getcwd())
        if args.json and not (args.dry_run or args.check):
            raise AggregatorError(Reason.BAD_USAGE, "--json goes with --dry-run or --check")
        if args.check:
            from aggregator.tools.check import run_check

            return run_check(root, args.app, output, verbose=args.verbose, early=early,
                             front=front, as_json=args.json)
        environment = read_environment(os.environ)
        config = load_config(root, output.warn)
        job = _job(front, args, config, environment, root, early, stdin_closed, output)
    except AggregatorError as err:
        if err.reason == Reason.NO_DRIVERS_DIR and args.version:
            # an install is checked before drivers are added: servo-agg's version still
            # shows, and the missing directory too (exit 1: servo would fail without it)
            output.write_line(version_line([f"no drivers: {drivers_of(config, front)[0]}/ "
                                            "is missing"]))
            output.note(f"error ({err.reason}): {err.message}")
            return 1
        output.error(err)
        return 1
    except StoppedEarly as stop:
        output.json_line({"status": Status.ABORTED, "reason": Reason.TERMINATED,
                          "message": f"servo-agg received {stop} while reading the request; "
                                     "no driver was started"})
        return 128 + stop.signum
    grace = config.measure if front is FrontEnd.MEASURE else config
    runs_drivers = job.command in (Command.ADJUST, MeasureCommand.MEASURE)
    with Run(servo_root=root, env=os.environ, environment=environment,
             kill_grace=grace.kill_grace, cancel_grace=grace.cancel_grace, output=output,
             early=early, verbose=args.verbose, heartbeat=not args.dry_run,
             live_display=runs_drivers and wants_live_display(sys.stderr, os.environ),
             driver_order=[d.name for d in job.drivers]) as run:
        run.start_early(job.opening_calls())
        return run.execute(_job_command(job, root))


def _job_command(job: Job, root: Path) -> RunCommand:
    async def command(session: Session) -> int:
        # imported under trio, once it is loaded
        if isinstance(job, MeasureJob):
            from aggregator.measure.commands import run_measure_job

            return await run_measure_job(job, session)
        from aggregator.adjust.commands import run_job

        return await run_job(job, session, root)

    return command
