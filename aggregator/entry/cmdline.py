"""The command line and the request on stdin: read before trio is imported."""

from __future__ import annotations

import argparse
import math
import os
import select
import sys
import time
from typing import NoReturn

from aggregator.limits import MAX_REQUEST_BYTES
from aggregator.protocol.environment import IO_TIMEOUT_VAR
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.request import bad_request, request_too_big
from aggregator.root.front_end import FrontEnd


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise AggregatorError("bad-usage", f"{message} (see {self.prog} --help)")


_DESCRIPTION = {
    FrontEnd.ADJUST: "Runs every adjust driver in ./adjust.d, one at a time in file-name "
                     "order,\nas one adjust driver for servo.",
    FrontEnd.MEASURE: "Runs every measure driver in ./measure.d, all at once in one "
                      "measurement\nwindow, as one measure driver for servo.",
}
_DESCRIBES = {FrontEnd.ADJUST: "all drivers' settings as one descriptor",
              FrontEnd.MEASURE: "all drivers' metrics as one description"}
_REQUEST = {FrontEnd.ADJUST: '{"application": {"components": ...}, "control": ...}',
            FrontEnd.MEASURE: '{"metrics": [...], "control": {"duration": ...}}'}

#: servo's variables: the same names and meanings for every command (README, "Configuration").
ENVIRONMENT = (
    ("OPTUNE_IO_TIMEOUT=T", "seconds servo waits for a line (unset, empty or 0: no limit);",
     "servo-agg waits T-1 s (T/2 when T <= 2) for each driver line"),
    ("OPTUNE_VERBOSE_STDERR", "all (default), minimal or none: how much of a failed",
     "driver's stderr goes into the message"),
    ("SERVO_AGG_RUN_ID", "set by servo-agg for each driver: the run's id in the journal",
     "(--show RUN_ID)"),
)


def _epilog(front: FrontEnd, prog: str) -> str:
    other = FrontEnd.MEASURE if front is FrontEnd.ADJUST else FrontEnd.ADJUST
    width = max(len(name) for name, *_ in ENVIRONMENT)
    return "\n".join([
        f"Without a command: {front} APP, the request on stdin, e.g.",
        f"  {_REQUEST[front]}",
        "then progress lines and one final line on stdout.",
        "",
        f"subcommands: the same program is ./{other} when run under that name (a symlink",
        "or a copy named so). Installed as servo-agg, a first argument chooses:",
        "servo-agg adjust ... or servo-agg measure ...; anything else is adjust.",
        "",
        "environment (servo sets them):",
        *(f"  {name:<{width}}  {line}\n  {'':<{width}}  {more}"
          for name, line, more in ENVIRONMENT),
        "",
        f"configuration: the aggregator: section of ./config.yaml ({prog} --check",
        "shows what it holds). Docs, in servo-agg's source: README.md (configuration,",
        "reasons), docs/deploying.md (the servo root, installing), docs/operator-tools.md",
        "(--check, --dry-run, -v, --last), docs/protocol.md (what servo and the drivers",
        "see), docs/supervision.md (timeouts, kills, limits, groups), docs/journal.md (the",
        "record of every run).",
    ])


def build_parser(front: FrontEnd = FrontEnd.ADJUST,
                 prog: str | None = None) -> argparse.ArgumentParser:
    """The command line of `front`, under the name it was called by (`adjust`,
    `measure`, `servo-agg`, `servo-agg measure`), which --help and usage errors show."""
    prog = prog or front.value
    parser = _Parser(prog=prog, description=_DESCRIPTION[front], epilog=_epilog(front, prog),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_argument_group("commands (one at a time)")
    mode = commands.add_mutually_exclusive_group()
    mode.add_argument("--version", action="store_true",
                      help="print the aggregator's and every driver's version")
    mode.add_argument("--info", action="store_true",
                      help="print {version, has_cancel} without starting any driver")
    mode.add_argument("--query", "--describe", action="store_true", dest="query",
                      help=f"print {_DESCRIBES[front]}")
    mode.add_argument("--dry-run", action="store_true", dest="dry_run",
                      help=f"read a{'n' if front is FrontEnd.ADJUST else ''} {front} request "
                           "and show what each driver would get; nothing is run")
    mode.add_argument("--check", action="store_true",
                      help="check this servo root and report what servo would meet")
    mode.add_argument("--last", nargs="?", const=1, type=int, metavar="N",
                      help="what the last N runs (default 1) did, from the journal")
    mode.add_argument("--show", metavar="RUN_ID", help="one run's record in full")
    mode.add_argument("--history", action="store_true", help="one line per recorded run")
    readers = parser.add_argument_group("reading the journal (--last, --history)")
    readers.add_argument("--failed", action="store_true",
                         help="only runs whose status is not ok")
    readers.add_argument("--since", metavar="WHEN",
                         help="only runs started since WHEN (30m, 2h, 1d, or an RFC 3339 "
                              "time)")
    parser.add_argument("--json", action="store_true",
                        help="with --dry-run or --check: one JSON document; with --last, "
                             "--show or --history: the records as they are, one per line")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="on stderr: every line exchanged with each driver, each exit, "
                             "a timing summary; stamped from the start")
    parser.add_argument("app", nargs="?", default="",
                        help="the application id, passed on to every driver")
    return parser


def read_request(timeout: float | None, kind: str, limit: int = MAX_REQUEST_BYTES,
                 source: str = IO_TIMEOUT_VAR) -> bytes:
    """All of stdin, up to `limit` bytes: a longer request is refused as soon as its
    `limit`+1st byte arrives, without reading (or holding) the rest. With a line limit
    (from T, which came from `source`), give up rather than wait forever. `kind`: the
    front-end reading it, which its errors name."""
    fd = sys.stdin.fileno()
    deadline = math.inf if timeout is None else time.monotonic() + timeout
    chunks: list[bytes] = []
    left = limit + 1  # one more than allowed: that byte proves the request too long
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise bad_request(f"no complete request on stdin within {timeout:g} s (the "
                              f"line limit, from {source})", kind)
        ready, _, _ = select.select([fd], [], [], None if math.isinf(remaining) else remaining)
        if not ready:
            continue
        chunk = os.read(fd, min(1 << 16, left))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        left -= len(chunk)
        if left <= 0:
            raise request_too_big(kind, limit)
