"""Everything before trio: arguments, environment, config, drivers, the request, and the
head start of the first driver call(s) while trio is being imported (see headstart.py)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from aggregator.entry.cmdline import build_parser, read_request
from aggregator.process.fork import can_fork_here
from aggregator.process.headstart import Headstart
from aggregator.process.linux import become_subreaper
from aggregator.process.sentinel import Sentinel, start_sentinel
from aggregator.protocol.environment import ServoEnvironment, read_environment
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.request import parse_request
from aggregator.root.config import AggregatorConfig, load_config
from aggregator.root.discovery import Driver, find_drivers
from aggregator.supervision.output import Output
from aggregator.supervision.signals import EarlySignals, StoppedEarly


@dataclass
class Prepared:
    """A command ready to run: everything checked, guards in place, drivers maybe started."""

    args: argparse.Namespace
    root: Path
    environment: ServoEnvironment
    config: AggregatorConfig
    drivers: list[Driver]
    stdin: bytes
    output: Output
    early: EarlySignals
    sentinel: Sentinel | None
    subreaper: bool
    headstart: Headstart


def first_calls(args: argparse.Namespace, config: AggregatorConfig,
                drivers: list[Driver]) -> list[list[str]]:
    """The driver calls the command surely makes first, in the form run_call will ask."""
    if not drivers or args.dry_run:
        return []
    app = [args.app] if args.app else []
    if args.version:
        return [[str(d.path), "--info", *app] for d in drivers]  # all at once, as version()
    query = [[str(d.path), "--query", *app] for d in drivers]
    return query if config.parallel_queries else query[:1]


def run(argv: list[str]) -> int:
    early = EarlySignals()
    early.install()
    try:
        return _run(argv, early)
    finally:
        early.uninstall()


def _run(argv: list[str], early: EarlySignals) -> int:
    output = Output()
    try:
        args = build_parser().parse_args(argv)
        if args.info:
            from aggregator.entry.info import print_info

            return print_info()
        root = Path(os.getcwd())
        if args.json and not args.dry_run:
            raise AggregatorError("bad-usage", "--json goes with --dry-run only")
        if args.check:
            from aggregator.tools.check import run_check

            return run_check(root, args.app, output, verbose=args.verbose, early=early)
        environment = read_environment(os.environ)
        config = load_config(root)
        drivers = find_drivers(root / config.drivers_dir, config.disabled)
        is_adjust = not (args.version or args.query)
        if is_adjust and not args.app:
            raise AggregatorError("bad-usage", "no application id given; servo calls "
                                  "'adjust <app>' with the request on stdin")
        with early.interrupting():
            # within the line limit, not T: servo must hear the error while it listens
            stdin = read_request(environment.line_limit) if is_adjust else b""
        if is_adjust:
            parse_request(stdin)  # a bad request is refused before any driver starts
    except AggregatorError as err:
        output.error(err)
        return 1
    except StoppedEarly as stop:
        output.json_line({"status": "aborted", "reason": "terminated",
                          "message": f"servo-agg received {stop} while reading the request; "
                                     "no driver was started"})
        return 128 + stop.signum
    sentinel = start_sentinel()  # before any driver: it kills what they leave if we die
    subreaper = become_subreaper()
    headstart = Headstart()
    prepared = Prepared(args, root, environment, config, drivers, stdin, output, early,
                        sentinel, subreaper, headstart)
    try:
        if can_fork_here() and not early.received:
            for call in first_calls(args, config, drivers):
                headstart.start(call, root, os.environ)
        from aggregator.supervision.app import (
            execute,  # imports trio: the head start runs meanwhile
        )

        return execute(prepared)
    finally:
        headstart.discard_all()
        if sentinel is not None:
            sentinel.dismiss()
        sys.stdout.flush()
