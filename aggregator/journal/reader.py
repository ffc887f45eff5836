"""Reading the journal back: its records, newest first, past any line that is not one;
and how it stands (for --check), found without writing anything.

A record cut short (the disk filled up, the machine stopped mid-write) or otherwise
corrupt is read past, and a note says where it was. Only what the reader asks for is
parsed: `--last` stops after the records it shows. Trio-free, and fast enough to answer
at once (a 4 MiB journal file is read in a few milliseconds).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, NamedTuple

from aggregator.journal.store import (
    JOURNAL_FILE,
    LOCK_FILE,
    file_names,
    file_size,
    open_below,
    problem,
    read_file,
    shown,
)
from aggregator.root.config import JournalConfig


@dataclass
class Journal:
    """One servo root's journal, as it is read."""

    root: Path
    config: JournalConfig
    notes: list[str] = field(default_factory=list)  # lines read past, for stderr
    found: bool = False  # a journal file was there

    @property
    def where(self) -> str:
        return shown(self.config)

    def newest_first(self, contains: bytes | None = None) -> Iterator[dict[str, Any]]:
        """Every record, newest first; with `contains`, only lines holding those bytes are
        parsed (a run id looked for)."""
        for name in file_names():
            data = read_file(self.root, self.config, name)
            if data is None:
                continue
            self.found = True
            lines = data.split(b"\n")
            for index in range(len(lines) - 1, -1, -1):
                line = lines[index]
                if not line.strip() or (contains is not None and contains not in line):
                    continue
                record = _parse(line)
                if record is None:
                    cut = index == len(lines) - 1  # no newline after it
                    self.notes.append(
                        f"{shown(self.config, name)}, line {index + 1}: "
                        f"{'a record cut short' if cut else 'not a record (corrupt)'}; "
                        "read past it")
                    continue
                yield record

    def last(self, count: int) -> list[dict[str, Any]]:
        """The newest `count` records, oldest of them first."""
        found: list[dict[str, Any]] = []
        for record in self.newest_first():
            if len(found) >= count:
                break
            found.append(record)
        return found[::-1]

    def every(self) -> list[dict[str, Any]]:
        """Every record, in the order they were written (each when its run ended)."""
        return list(self.newest_first())[::-1]

    def run(self, run_id: str) -> list[dict[str, Any]]:
        """The records whose id is `run_id`, or starts with it."""
        wanted = run_id.encode("utf-8", "replace")
        return [record for record in self.newest_first(wanted)
                if isinstance(record.get("run"), str) and record["run"].startswith(run_id)]


def _parse(line: bytes) -> dict[str, Any] | None:
    """A record, or None for a line that is not one."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError too; "[[[[..." nested deep
        return None
    if not isinstance(record, dict) or not isinstance(record.get("run"), str) \
            or not isinstance(record.get("schema"), int):
        return None
    return record


#: `--since 30m`: the units a duration may have, in seconds.
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: The largest number of a unit a duration may have.
_MOST_UNITS = 1e9


def parse_since(text: str, now: float) -> float:
    """`--since`: a duration back from `now` (30m, 2h, 1d, also s and w) or an RFC 3339
    time (`T` and `Z` in either case, as RFC 3339 allows; without an offset: local time);
    the time as seconds since the epoch. A ValueError says what is accepted."""
    from datetime import datetime

    value = text.strip()
    if value[-1:] in _UNITS:
        try:
            amount = float(value[:-1])
        except ValueError:
            amount = -1.0
        if 0 <= amount < _MOST_UNITS:
            return now - amount * _UNITS[value[-1]]
        if amount >= _MOST_UNITS:  # infinity too
            raise ValueError(f"--since {text!r} is out of range: a duration is less than "
                             f"{_MOST_UNITS:.0f} of its unit")
    try:
        moment = datetime.fromisoformat(value.upper())  # fromisoformat takes only T and Z
    except ValueError:
        raise ValueError(f"--since {text!r} is neither a duration (such as 30m, 2h or 1d) "
                         "nor an RFC 3339 time (such as 2026-12-06T05:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as the operator's clock shows it
    return moment.timestamp()


def started_at(record: dict[str, Any]) -> float | None:
    """When the run started, in seconds since the epoch (None if the record cannot say)."""
    from datetime import datetime

    started = record.get("started")
    if not isinstance(started, str):
        return None
    try:
        return datetime.fromisoformat(started).timestamp()
    except ValueError:
        return None


class JournalState(NamedTuple):
    """Where the journal is, whether a run could add to it, and how large it is."""

    where: str  # journal.jsonl, from the servo root
    writable: bool
    why: str | None  # why it cannot be written (or, when writable, that it will be made)
    size: int  # all its files
    files: int


def inspect(root: Path, config: JournalConfig) -> JournalState:
    """The journal as a run would find it, without writing (or making) anything."""
    where = shown(config)
    parts = [p for p in PurePath(config.dir).parts if p not in (".", "")]
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for depth, part in enumerate(parts):
            try:
                below = open_below(fd, part)
            except FileNotFoundError:
                missing = str(PurePath(*parts[:depth + 1]))
                if not os.access(".", os.W_OK, dir_fd=fd):
                    return JournalState(where, False, f"{missing} is missing, and cannot "
                                        "be made here (not writable)", 0, 0)
                return JournalState(where, True, f"{missing} will be made by the first run",
                                    0, 0)
            except OSError as exc:
                return JournalState(where, False, f"{PurePath(*parts[:depth + 1])}: "
                                    f"{problem(exc)}", 0, 0)
            os.close(fd)
            fd = below
        present = [name for name in file_names() if _exists(fd, name)]
        size = sum(file_size(fd, name) for name in present)
        for name in (JOURNAL_FILE, LOCK_FILE):
            if not _exists(fd, name):
                continue
            mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            if not stat.S_ISREG(mode):
                return JournalState(where, False, f"{shown(config, name)} is not a regular "
                                    "file", size, len(present))
        if not os.access(".", os.W_OK, dir_fd=fd) or any(
                not os.access(name, os.W_OK, dir_fd=fd) for name in (JOURNAL_FILE, LOCK_FILE)
                if _exists(fd, name)):
            return JournalState(where, False, "not writable", size, len(present))
        return JournalState(where, True, None, size, len(present))
    finally:
        os.close(fd)


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True
