"""The journal's files in the servo root: writing one record, and finding them again.

`.servo-agg/journal.jsonl` (journal.dir), then journal.jsonl.1 .. .3, newest first, each
at most a quarter of journal.max_bytes: when a record would not fit in journal.jsonl, the
files move down one and the oldest goes, so all of them together stay within the bound.
A record is appended with one write(2) (O_APPEND) while `journal.lock` is held (flock),
so two aggregators in one root never interleave or lose records. Nothing is followed out
of the servo root: no component of the journal's path, nor its files, may be a symlink
(O_NOFOLLOW). What goes wrong is an OSError whose words say it (`problem`). Trio-free,
and quick to import (no dataclass here): every run imports it at its end.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path, PurePath
from types import FrameType

from aggregator.limits import JOURNAL_FILES, JOURNAL_LOCK_SECONDS
from aggregator.root.config import JournalConfig

JOURNAL_FILE = "journal.jsonl"
LOCK_FILE = "journal.lock"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: O_NONBLOCK: a FIFO in the journal's place must not block the open.
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def file_names() -> list[str]:
    """The journal's files, newest first."""
    return [JOURNAL_FILE] + [f"{JOURNAL_FILE}.{n}" for n in range(1, JOURNAL_FILES)]


def file_bound(config: JournalConfig) -> int:
    """The most one file (and so one record) may hold."""
    return config.max_bytes // JOURNAL_FILES


def shown(config: JournalConfig, name: str = JOURNAL_FILE) -> str:
    """A journal file as the operator finds it from the servo root."""
    return str(PurePath(config.dir) / name)


def problem(exc: OSError) -> str:
    """What went wrong, in words (the strerror of ELOOP says nothing of symlinks)."""
    if exc.errno == errno.ELOOP:
        return "a symlink, which servo-agg does not follow"
    if exc.errno == errno.ENOTDIR:
        return "not a directory"
    if isinstance(exc, TimeoutError):
        return str(exc)
    return exc.strerror or str(exc)


def open_below(dir_fd: int, name: str) -> int:
    """The directory `name` in `dir_fd`, not followed if it is a symlink: that is an
    ELOOP, as for a file (Linux says ENOTDIR for a symlink opened with O_DIRECTORY)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except NotADirectoryError:
        try:
            link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            link = False
        if link:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), name) from None
        raise


def open_dir(root: Path, relative: str, *, create: bool) -> int:
    """The journal's directory, opened without following a symlink anywhere below the
    servo root (made, 0700, where missing and `create`)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in PurePath(relative).parts:
            if part in (".", ""):
                continue
            try:
                below = open_below(fd, part)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):  # another run made it meanwhile
                    os.mkdir(part, 0o700, dir_fd=fd)
                below = open_below(fd, part)
            os.close(fd)
            fd = below
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(dir_fd: int, name: str, flags: int, mode: int = 0o600) -> int:
    """A regular file of the directory `dir_fd` (never a symlink, FIFO or device): the
    journal's files, and the metrics file. The open itself never blocks."""
    fd = os.open(name, flags | _FILE_FLAGS, mode, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{name} is not a regular file")
    return fd


def _timed_out(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError("another servo-agg held its lock too long")


@contextlib.contextmanager
def locked(dir_fd: int, seconds: float = JOURNAL_LOCK_SECONDS,
           name: str = LOCK_FILE) -> Iterator[None]:
    """The lock on a file of the directory `dir_fd` (flock on `name`: the journal's is
    journal.lock), waited for at most `seconds`: a holder that is stuck (stopped, or on
    a hung file system) must not hang this run's exit.

    flock(2) has no timeout of its own; a signal is what ends its wait, so this borrows
    the process's SIGALRM and ITIMER_REAL for that long: process-wide state, and safe
    only where it is used, at the end of a run (keep_record) once trio has ended: one
    thread, the main one (only it may set a handler); nothing else in servo-agg uses
    SIGALRM or ITIMER_REAL, so no other timer is cut short and the handler put back is
    the default. (The other ways: polling LOCK_NB, which the project rules out, or a
    forked waiter, a process per record.) An alarm that comes just as the lock is
    taken reports a timeout; the lock then goes with the file."""
    fd = open_file(dir_fd, name, os.O_RDWR | os.O_CREAT)
    try:
        previous = signal.signal(signal.SIGALRM, _timed_out)
        try:
            signal.setitimer(signal.ITIMER_REAL, seconds)
            fcntl.flock(fd, fcntl.LOCK_EX)  # interrupted by SIGALRM: TimeoutError
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        yield  # closing the file below lets go of the lock
    finally:
        os.close(fd)


def file_size(dir_fd: int, name: str) -> int:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_size
    except FileNotFoundError:
        return 0


def _rotate(dir_fd: int) -> None:
    """journal.jsonl becomes .1, .1 becomes .2, ...; the oldest is replaced."""
    names = file_names()
    for newer, older in reversed(list(itertools.pairwise(names))):
        with contextlib.suppress(FileNotFoundError):
            os.rename(newer, older, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _trim(dir_fd: int, room: int) -> None:
    """Remove the oldest rotated files until those left hold at most `room` bytes (a
    journal.max_bytes made smaller since they were written)."""
    rotated = file_names()[1:]
    sizes = [file_size(dir_fd, name) for name in rotated]
    while rotated and sum(sizes) > room:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(rotated[-1], dir_fd=dir_fd)
        rotated.pop()
        sizes.pop()


def append(root: Path, config: JournalConfig, line: bytes,
           lock_seconds: float = JOURNAL_LOCK_SECONDS) -> None:
    """Add one record (a line no longer than file_bound) to the journal, in one write. A
    longer line is refused (record.encode never makes one) before anything is touched:
    making room for it would rotate and trim away the whole history."""
    if len(line) > file_bound(config):
        raise OSError(errno.EFBIG, f"a record of {len(line)} bytes is over the "
                                   f"{file_bound(config)} bytes one file may hold")
    dir_fd = open_dir(root, config.dir, create=True)
    try:
        with locked(dir_fd, lock_seconds):
            fd = open_file(dir_fd, JOURNAL_FILE, os.O_RDWR | os.O_APPEND | os.O_CREAT)
            try:
                size = os.fstat(fd).st_size
                if size and size + len(line) > file_bound(config):
                    os.close(fd)
                    fd = -1
                    _rotate(dir_fd)
                    fd = open_file(dir_fd, JOURNAL_FILE,
                                    os.O_RDWR | os.O_APPEND | os.O_CREAT)
                    size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # the last record was cut short: not this one too
                _trim(dir_fd, config.max_bytes - size - len(line))
                written = os.write(fd, line)
                if written != len(line):  # the disk filled up: no half record is left
                    os.ftruncate(fd, size)
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            finally:
                if fd >= 0:
                    os.close(fd)
    finally:
        os.close(dir_fd)


def read_file(root: Path, config: JournalConfig, name: str) -> bytes | None:
    """One of the journal's files, whole (None when it, or the journal, is not there)."""
    try:
        dir_fd = open_dir(root, config.dir, create=False)
    except FileNotFoundError:
        return None
    try:
        try:
            fd = open_file(dir_fd, name, os.O_RDONLY)
        except FileNotFoundError:
            return None
        with open(fd, "rb") as file:
            return file.read()
    finally:
        os.close(dir_fd)
