"""The Linux process controls supervision relies on (prctl(2)), and what /proc says of
a process: its parent, its state, when it started, its children.

The prctl helpers are no-ops (returning False or None) where prctl does not exist.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    # The symbols already loaded (libc's among them): ctypes.util.find_library would run
    # `ldconfig -p` in a child process, on every driver start.
    libc = ctypes.CDLL(None, use_errno=True)
    fn: Callable[..., int] = libc.prctl
    return fn


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process, so none can escape a sweep.

    A driver's grandchild that called setsid() leaves the driver's process group; when the
    driver dies it would go to init and live on. As a subreaper we inherit it and can kill it.
    """
    prctl = _prctl()
    if prctl is None:
        return False
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def is_subreaper() -> bool:
    prctl = _prctl()
    if prctl is None:
        return False
    value = ctypes.c_int(0)
    return prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0) == 0 and bool(value.value)


def parent_death_guard(sig: int = signal.SIGKILL, *,
                       subreaper: bool = False) -> Callable[[], None] | None:
    """A preexec_fn that makes the child get `sig` when its parent dies (and, with
    `subreaper`, makes it a child subreaper: both survive the exec).

    The kernel ties this to the *thread* that forked the child, so the child must be
    forked from the long-lived main thread (see fork.py), never from a worker thread.
    The parent pid is checked after arming, for a parent that died before the prctl call.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(127)
        if subreaper:
            prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    return arm


class ProcStat(NamedTuple):
    """What /proc/PID/stat says of a process that matters to finding and killing it."""

    pid: int
    state: str  # stat(5) field 3: R, S, D, T (stopped), t (traced), Z (zombie), X ...
    ppid: int
    start: int  # clock ticks since boot: with the pid, names one process for good

    @property
    def running(self) -> bool:
        """Not finished: a zombie (or a dead task) has nothing left to kill."""
        return self.state not in "ZXx"

    @property
    def stopped(self) -> bool:
        return self.state in "Tt"


def parse_stat(data: bytes) -> ProcStat | None:
    """One /proc/PID/stat line (the command name in parentheses may hold anything)."""
    head, close, rest = data.rpartition(b")")
    fields = rest.split()
    try:
        if not close or len(fields) < 20:
            return None
        pid = int(head.partition(b"(")[0])
        return ProcStat(pid, fields[0].decode("ascii", "replace"), int(fields[1]),
                        int(fields[19]))
    except ValueError:
        return None


def read_stat(pid: int) -> ProcStat | None:
    """The process `pid` is now (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return parse_stat(f.read())
    except OSError:
        return None


def process_table() -> dict[int, ProcStat]:
    """Every process /proc shows, by pid (threads are not listed there)."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (stat := read_stat(int(entry.name))) is not None:
            table[stat.pid] = stat
    return table


def child_pids(parent: int | None = None) -> set[int]:
    """Pids whose parent is `parent` (this process by default), forked by any thread."""
    parent = parent or os.getpid()
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{parent}/task").iterdir():
            found.update(int(p) for p in (task / "children").read_text().split())
        return found
    except FileNotFoundError:
        pass  # kernel without CONFIG_PROC_CHILDREN: scan every process instead
    except OSError:
        return found
    return {stat.pid for stat in process_table().values() if stat.ppid == parent}


def process_start_ticks(pid: int) -> int:
    """When the process started, in clock ticks since boot (0 where /proc cannot say)."""
    stat = read_stat(pid)
    return 0 if stat is None else stat.start


def process_age(pid: int | None = None) -> float:
    """Seconds since the process started (0.0 where /proc cannot say).

    servo's OPTUNE_IO_TIMEOUT counts from the moment it started us, which includes the
    interpreter's start-up; the aggregator's own silence must be counted from there too.
    """
    ticks = process_start_ticks(pid or os.getpid())
    if not ticks:
        return 0.0
    try:
        started = ticks / os.sysconf("SC_CLK_TCK")
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, AttributeError):
        return 0.0
