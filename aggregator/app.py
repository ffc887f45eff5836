"""Parsing the command line, building the run, and running the command under trio."""

from __future__ import annotations

import argparse
import math
import os
import select
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn

import trio

from . import PRODUCT, __version__
from .config import load_config
from .context import RunContext, new_supervision, verbose_trace
from .control import listen_for_signals
from .discovery import find_drivers
from .early_signals import EarlySignals, StoppedEarly
from .environment import read_environment
from .errors import AggregatorError
from .live import LiveDisplay, wants_live_display
from .output import Output


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise AggregatorError("bad-usage", f"{message} (see {PRODUCT} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="adjust",
        description="Runs every adjust driver in ./adjust.d as one driver for servo.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--version", action="store_true",
                      help="print the aggregator's and every driver's version")
    mode.add_argument("--info", action="store_true",
                      help="print {version, has_cancel} without starting any driver")
    mode.add_argument("--query", "--describe", action="store_true", dest="query",
                      help="print all drivers' settings as one descriptor")
    mode.add_argument("--dry-run", action="store_true", dest="dry_run",
                      help="read an adjust request and show what each driver would get")
    mode.add_argument("--check", action="store_true",
                      help="check this servo root and report what servo would meet")
    parser.add_argument("--json", action="store_true", help="--dry-run: one JSON object")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="every line exchanged with each driver, on stderr")
    parser.add_argument("app", nargs="?", default="", help="the application id")
    return parser


def read_request(timeout: float | None) -> bytes:
    """All of stdin; with OPTUNE_IO_TIMEOUT set, give up rather than wait forever."""
    fd = sys.stdin.fileno()
    deadline = math.inf if timeout is None else time.monotonic() + timeout
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AggregatorError("bad-input", f"no complete request on stdin within "
                                  f"{timeout:g} s; no driver was run")
        ready, _, _ = select.select([fd], [], [], None if math.isinf(remaining) else remaining)
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


async def _supervised(ctx: RunContext, command: Callable[[RunContext], Awaitable[int]],
                      early: EarlySignals) -> int:
    control = ctx.sup.control
    code = 1
    async with trio.open_nursery() as nursery:
        await nursery.start(listen_for_signals, control)
        early.apply(control)
        try:
            code = await command(ctx)
        except AggregatorError as err:
            if control.stopping:
                from .commands import stopped_result

                result, code = stopped_result(ctx, None)
                ctx.output.json_line(result)
            else:
                ctx.output.error(err)
                code = 1
        finally:
            if ctx.sup.sweeper is not None:
                await ctx.sup.sweeper.sweep()
            if ctx.verbose:
                for line in ctx.timing_summary():
                    ctx.output.note(f"timing: {line}")
        nursery.cancel_scope.cancel()
    return code


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
            from .info import print_info

            return print_info()
        root = Path(os.getcwd())
        if args.json and not args.dry_run:
            raise AggregatorError("bad-usage", "--json goes with --dry-run only")
        if args.check:
            from .check import run_check

            return run_check(root, args.app, output, verbose=args.verbose, early=early)
        environment = read_environment(os.environ)
        config = load_config(root)
        drivers = find_drivers(root / config.drivers_dir, config.disabled)
        is_adjust = not (args.version or args.query)
        if is_adjust and not args.app:
            raise AggregatorError("bad-usage", "no application id given; servo calls "
                                  "'adjust <app>' with the request on stdin")
        with early.interrupting():
            stdin = read_request(environment.io_timeout) if is_adjust else b""
    except AggregatorError as err:
        output.error(err)
        return 1
    except StoppedEarly as stop:
        output.json_line({"status": "aborted", "reason": "terminated",
                          "message": f"servo-agg received {stop} while reading the request; "
                                     "no driver was started"})
        return 128 + stop.signum
    sup = new_supervision(root, os.environ, environment.io_timeout, config,
                          verbose_trace(output) if args.verbose else None)
    ctx = RunContext(root, args.app, config, environment, drivers, output, sup,
                     heartbeat=not args.dry_run, verbose=args.verbose)
    if is_adjust and not args.dry_run and wants_live_display(sys.stderr, os.environ):
        ctx.display = output.overlay = LiveDisplay(sys.stderr)
    from . import commands

    async def chosen(ctx: RunContext) -> int:
        if args.version:
            return await commands.version(ctx)
        if args.query:
            return await commands.query(ctx)
        if args.dry_run:
            from .dry_run import dry_run

            return await dry_run(ctx, stdin, as_json=args.json)
        return await commands.adjust(ctx, stdin)

    try:
        return trio.run(_supervised, ctx, chosen, early)
    finally:
        if sup.sentinel is not None:
            sup.sentinel.dismiss()


__all__ = ["__version__", "build_parser", "run"]
