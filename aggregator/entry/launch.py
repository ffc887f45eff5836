"""Everything before trio: arguments, environment, config, drivers and the request, all
checked before any driver starts; then the front-end's job handed to a Run; and once
servo has the final line, the run's record (the journal, the metrics file)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aggregator.entry.cmdline import build_parser, read_request
from aggregator.protocol.environment import (
    CONFIG_IO_TIMEOUT,
    ServoEnvironment,
    read_environment,
)
from aggregator.protocol.errors import STDOUT_CLOSED, AggregatorError
from aggregator.protocol.text import version_line
from aggregator.protocol.vocabulary import Reason, Status
from aggregator.root.config import AggregatorConfig, load_config
from aggregator.root.config_probe import read_config_text
from aggregator.root.discovery import drivers_among, scan, unrun_programs
from aggregator.root.front_end import FrontEnd, drivers_of
from aggregator.supervision.facts import RunFacts
from aggregator.supervision.output import Output, wants_live_display
from aggregator.supervision.run import Command as RunCommand
from aggregator.supervision.run import Run
from aggregator.supervision.signals import EarlySignals, StoppedEarly

if TYPE_CHECKING:  # each front-end's modules are imported by _job, for its own runs
    from aggregator.adjust.calls import AdjustJob
    from aggregator.measure.calls import MeasureJob
    from aggregator.supervision.session import Session

    Job = AdjustJob | MeasureJob


def run(argv: list[str], front: FrontEnd = FrontEnd.ADJUST, *, stdin_closed: bool = False,
        stdout_closed: bool = False, servo_pid: int | None = None,
        program: str | None = None) -> int:
    """The command's exit code; never 0 when what it wrote could not all reach servo.
    `stdout_closed`: it was closed at start (cli.open_closed_stdio put /dev/null there),
    so the run is refused, and recorded as any refusal; `servo_pid`: our parent at start,
    watched so that its exit stops the run; `program`: the name it was called by, for
    --help."""
    facts = RunFacts.begin(front, argv, os.environ)
    early = EarlySignals(record=facts.signal)
    early.install()
    output = Output.for_servo(servo_pid)  # non-blocking, on a file description of its own
    if stdout_closed:  # no line reaches servo; the record says why (servo_gone)
        output.closed, output.lost = True, "stdout was closed at start"
    root = Path(os.getcwd())
    try:
        code, config = _run(argv, front, early, output, stdin_closed, facts, root, program)
        code = 1 if code == 0 and output.lost is not None else code
        # Every line is out: recording it never delays servo's final line, and a stop
        # from here on ends the process at once (the record is not worth a hang).
        early.let_stops_end_the_process()
        try:
            keep_record(root, facts, output, code, config)
        except Exception as exc:  # a fault of the record's own never changes the outcome
            output.note(f"this run was not recorded ({_fault(exc)}); the run's outcome "
                        "stands as reported")
    finally:
        early.uninstall()
        output.close()
        with contextlib.suppress(OSError, ValueError):  # /dev/full, closed
            sys.stdout.flush()
    return code


def keep_record(root: Path, facts: RunFacts, output: Output, code: int,
                config: AggregatorConfig | None) -> None:
    """The run's record into the journal and the metrics file, as config.yaml says (or
    their defaults when it could not be read). Neither changes the outcome: what cannot
    be written costs a note on stderr."""
    facts.exit_code = code
    facts.duration = facts.elapsed()
    facts.final, facts.result = output.last_sent, output.last_object
    facts.notes = list(output.said)
    facts.servo_gone = facts.servo_gone or output.lost
    if config is None:
        try:
            config = load_config(root)
        except AggregatorError:
            config = AggregatorConfig()  # the record goes to the default place
    if not config.journal.enabled and config.metrics_file is None:
        return
    from aggregator.journal import store
    from aggregator.journal.record import build, digest, encode

    with contextlib.suppress(AggregatorError):  # unreadable: its digest is left out
        text = read_config_text(root)
        facts.config_digest = None if text is None else digest(text.encode("utf-8"))
    journal = config.journal
    if journal.enabled:  # each sink's fault is its own: the other is still written
        try:
            store.append(root, journal, encode(facts, store.file_bound(journal)))
        except Exception as exc:
            output.note(f"this run was not recorded: the journal {store.shown(journal)} "
                        f"cannot be written ({_fault(exc)}); the run's outcome stands as "
                        "reported")
    if config.metrics_file is not None:
        path = root / config.metrics_file
        try:
            from aggregator.journal.metrics import update

            note = update(path, build(facts), facts.started + facts.duration)
        except Exception as exc:
            note = (f"the metrics file {path} was not updated ({_fault(exc)}); the run's "
                    "outcome stands as reported")
        if note is not None:
            output.note(note)


def _fault(exc: Exception) -> str:
    """What went wrong with the record, in words: an OSError's own (store.problem), the
    kind and words of anything else (a bug, which these notes must not hide)."""
    if isinstance(exc, OSError):
        from aggregator.journal.store import problem

        return problem(exc)
    return f"{type(exc).__name__}: {exc}"


def _job(front: FrontEnd, command: str, args: argparse.Namespace, config: AggregatorConfig,
         environment: ServoEnvironment, root: Path, early: EarlySignals,
         stdin_closed: bool, facts: RunFacts, output: Output) -> tuple[Job, RunCommand]:
    """The front-end's job for `command` (_command's), the request read and checked
    (before any driver starts), and the command that runs it under trio.

    The seam between the front-ends: each one's modules are imported here, for its own
    runs only, so that neither pays the other's import at every start
    (tests/test_layers.py)."""
    drivers_dir, disabled = drivers_of(config, front)
    candidates = scan(root / drivers_dir)
    for warning in unrun_programs(drivers_dir, candidates):
        output.warn(warning)
    drivers = tuple(drivers_among(candidates, disabled))
    if front is FrontEnd.MEASURE:
        from aggregator.measure.calls import MeasureCommand, MeasureJob
        from aggregator.protocol.measure import parse_measure_request

        measure = MeasureCommand(command)
        data = (_request(front, args, environment, early, stdin_closed, facts)
                if measure in (MeasureCommand.MEASURE, MeasureCommand.DRY_RUN) else None)
        measure_job = MeasureJob(measure, args.app, config.measure, drivers,
                                 None if data is None else
                                 parse_measure_request(data, [d.name for d in drivers]),
                                 as_json=args.json)
        return measure_job, _measure_command(measure_job)
    from aggregator.adjust.calls import AdjustJob, Command
    from aggregator.protocol.request import parse_request

    adjust = Command(command)
    data = (_request(front, args, environment, early, stdin_closed, facts)
            if adjust in (Command.ADJUST, Command.DRY_RUN) else None)
    adjust_job = AdjustJob(adjust, args.app, config, drivers,
                           None if data is None else parse_request(data), as_json=args.json)
    return adjust_job, _adjust_command(adjust_job, root)


def _request(front: FrontEnd, args: argparse.Namespace, environment: ServoEnvironment,
             early: EarlySignals, stdin_closed: bool, facts: RunFacts) -> bytes:
    """The request on stdin, for a command that takes one (the app id given first)."""
    if not args.app:
        raise AggregatorError(Reason.BAD_USAGE, f"no application id given; servo calls "
                              f"'{front} <app>' with the request on stdin")
    if stdin_closed:  # /dev/null stands in for it: nothing to read
        raise AggregatorError(Reason.BAD_INPUT, f"{front} request: stdin was closed, "
                              "so there is no request; no driver was run")
    with early.interrupting():
        # within the line limit, not T: servo must hear the error while it listens
        data = read_request(environment.line_limit, front,
                            source=environment.io_timeout_source)
    facts.request = data
    return data


def _command(args: argparse.Namespace, front: FrontEnd) -> str:
    """The command the arguments ask for, the one derivation: the job's command (adjust's
    Command or measure's MeasureCommand, by value), or check; the record names it so."""
    if args.check:
        return "check"
    if args.version:
        return "version"
    if args.query:
        return "describe" if front is FrontEnd.MEASURE else "query"
    return "dry-run" if args.dry_run else str(front)


def _run(argv: list[str], front: FrontEnd, early: EarlySignals, output: Output,
         stdin_closed: bool, facts: RunFacts, root: Path,
         program: str | None = None) -> tuple[int, AggregatorConfig | None]:
    """The exit code, and the config when it could be read."""
    config = None
    try:
        args = build_parser(front, program).parse_args(argv)
        command = facts.command = _command(args, front)
        facts.app = args.app or ""
        if args.verbose:  # every note from here on says when, from the process's start
            output.stamp_notes()
        if output.lost is not None:  # stdout closed at start: nothing could reach servo
            raise AggregatorError(Reason.BAD_STDIO, STDOUT_CLOSED)
        if args.json and not (args.dry_run or args.check):
            raise AggregatorError(Reason.BAD_USAGE, "--json goes with --dry-run or --check")
        if args.last is not None or args.show is not None or args.history:
            # only abbreviated, since cli.py sends the rest on
            raise AggregatorError(Reason.BAD_USAGE, "--last, --show and --history are "
                                  "spelled out in full")
        if args.failed or args.since is not None:
            raise AggregatorError(Reason.BAD_USAGE, "--failed and --since go with --history "
                                  "or --last (e.g. --history --failed --since 2h)")
        if args.check:
            from aggregator.tools.check import run_check

            return run_check(root, args.app, output, verbose=args.verbose, early=early,
                             front=front, facts=facts, as_json=args.json), None
        environment = read_environment(os.environ)
        config = load_config(root, output.warn)
        environment = environment.with_fallback(config.io_timeout, CONFIG_IO_TIMEOUT)
        job, job_command = _job(front, command, args, config, environment, root, early,
                                stdin_closed, facts, output)
    except AggregatorError as err:
        if err.reason == Reason.NO_DRIVERS_DIR and config is not None and args.version:
            # an install is checked before drivers are added: servo-agg's version still
            # shows, and the missing directory too (exit 1: servo would fail without it)
            output.report([version_line([f"no drivers: {drivers_of(config, front)[0]}/ "
                                         "is missing"])])
            output.note(f"error ({err.reason}): {err.message}")
            return 1, config
        output.error(err)
        return 1, config
    except StoppedEarly as stop:
        result = {"status": Status.ABORTED, "reason": Reason.TERMINATED,
                  "message": f"servo-agg received {stop} while reading the request; "
                             "no driver was started"}
        output.failure(result, result["status"], result["message"])  # as any stopped run
        return 128 + stop.signum, config
    grace = config.measure if front is FrontEnd.MEASURE else config
    runs_drivers = command == front  # adjust's adjust, measure's measure (_command)
    with Run(servo_root=root, env=os.environ, environment=environment,
             kill_grace=grace.kill_grace, cancel_grace=grace.cancel_grace, output=output,
             early=early, verbose=args.verbose, heartbeat=not args.dry_run,
             live_display=runs_drivers and wants_live_display(sys.stderr, os.environ),
             driver_order=[d.name for d in job.drivers],
             bounds=grace.run_bounds(d.name for d in job.drivers), facts=facts) as run:
        try:
            run.require_room(*job.at_once())  # before any driver, head starts included
        except AggregatorError as err:
            output.error(err)
            return 1, config
        run.start_early(job.opening_calls())
        return run.execute(job_command), config


def _adjust_command(job: AdjustJob, root: Path) -> RunCommand:
    async def command(session: Session) -> int:
        from aggregator.adjust.commands import run_job  # under trio, once it is loaded

        return await run_job(job, session, root)

    return command


def _measure_command(job: MeasureJob) -> RunCommand:
    async def command(session: Session) -> int:
        from aggregator.measure.commands import run_measure_job  # under trio, as above

        return await run_measure_job(job, session)

    return command
