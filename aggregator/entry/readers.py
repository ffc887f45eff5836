"""`--last [N]`, `--show RUN_ID` and `--history`: what the journal says about earlier runs.

For the operator after the fact: answered at once, before trio is loaded (entry/cli.py
sends these here), with or without a usable config.yaml (then the journal is read at its
default place), from either front-end: each shows the runs of both, `./adjust` or
`./measure` named. They never add a record of their own. `--json` prints the records as
they are, one per line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aggregator.entry.cmdline import build_parser
from aggregator.journal.reader import Journal, parse_since, started_at
from aggregator.journal.show import block, full, history
from aggregator.journal.store import problem, shown
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.strict_json import dumps
from aggregator.protocol.text import visible
from aggregator.protocol.vocabulary import Reason
from aggregator.root.config import JournalConfig, load_config
from aggregator.root.front_end import FrontEnd
from aggregator.supervision.output import Output, stdout_failure


def _args(argv: list[str], front: FrontEnd) -> argparse.Namespace:
    args = build_parser(front).parse_args(argv)
    if args.last is not None and args.last < 1:
        raise AggregatorError(Reason.BAD_USAGE, f"--last {args.last}: give a number of "
                                                "runs, 1 or more")
    if args.show is not None and (args.failed or args.since):
        raise AggregatorError(Reason.BAD_USAGE, "--failed and --since go with --last or "
                                                "--history, not --show")
    if args.app or args.verbose:
        raise AggregatorError(Reason.BAD_USAGE, "--last, --show and --history take no app "
                                                "id and no -v")
    return args


def _journal(root: Path, notes: list[str]) -> JournalConfig:
    """The journal's settings from config.yaml; its default place when it cannot be read."""
    try:
        config = load_config(root).journal
    except AggregatorError as err:
        notes.append(f"{err.message}; reading the journal at its default place")
        return JournalConfig()
    if not config.enabled:
        notes.append("journal.enabled is false in config.yaml: runs are not being recorded "
                     "now; showing what was recorded before")
    return config


def _selected(journal: Journal, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The records the options ask for, oldest first."""
    if args.show is not None:
        return journal.run(args.show)[::-1]
    wanted: list[Callable[[dict[str, Any]], bool]] = []
    if args.failed:
        wanted.append(lambda record: record.get("status") != "ok")
    if args.since is not None:
        try:
            since = parse_since(args.since, time.time())
        except ValueError as exc:
            raise AggregatorError(Reason.BAD_USAGE, str(exc)) from None
        wanted.append(lambda record: (started_at(record) or 0.0) >= since)
    if args.last is not None and not wanted:
        return journal.last(args.last)
    found = [r for r in journal.newest_first() if all(test(r) for test in wanted)]
    return found[:args.last][::-1] if args.last is not None else found[::-1]


def _lines(records: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    if args.json:
        return [dumps(record) for record in records]
    if args.history:
        return history(records)
    shown: list[str] = []
    for record in records:
        if shown:
            shown.append("")
        shown += full(record) if args.show is not None else block(record)
    return shown


def _print(lines: list[str], notes: list[str]) -> int:
    """The answer on stdout, the notes on stderr; a reader piped into `head` ends quietly.
    Any other failure of stdout (/dev/full, EIO) is the one note every command gives, and
    exit 1."""
    try:
        for note in notes:
            print(f"servo-agg: {visible(note)}", file=sys.stderr)
        sys.stdout.write("".join(f"{line}\n" for line in lines))
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing more to say to the pipe
    except OSError as exc:  # what is still buffered is dropped by exit_now's flush
        with contextlib.suppress(OSError, ValueError):
            print(f"servo-agg: {stdout_failure(exc)}", file=sys.stderr, flush=True)
        return 1
    return 0


def _unreadable(where: str, exc: OSError) -> str:
    """Why the journal cannot be read: which of its parts, and what it is."""
    part = f"{exc.filename}: " if isinstance(exc.filename, str) else ""
    return f"the journal {where} cannot be read ({part}{problem(exc)})"


def read_journal(argv: list[str], front: FrontEnd) -> int:
    """Answer a reader; 0 unless the command line is wrong, `--show`'s run is unknown or
    the journal cannot be read (a directory where a file goes, a symlink, no access)."""
    notes: list[str] = []
    where = shown(JournalConfig())
    try:
        args = _args(argv, front)
        root = Path(os.getcwd())
        journal = Journal(root, _journal(root, notes))
        where = journal.where
        records = _selected(journal, args)
        notes += journal.notes
        if args.show is not None and not records:
            raise AggregatorError(Reason.BAD_USAGE, f"no run {args.show} in {journal.where}"
                                  + (" (it may have been rotated out)" if journal.found
                                     else ": no run has been recorded yet"))
        if not journal.found:
            notes.append(f"no runs recorded yet: {journal.where} does not exist (each run "
                         "of ./adjust and ./measure, but --info, --help and these "
                         "readers, adds one)")
    except AggregatorError as err:
        output = Output()
        for note in notes:
            output.note(note)
        output.error(err)
        output.close()
        return 1
    except OSError as exc:
        _print([], [*notes, _unreadable(where, exc)])
        return 1
    return _print(_lines(records, args), notes)
