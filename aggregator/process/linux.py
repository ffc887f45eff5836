"""The two Linux process controls supervision relies on, via prctl(2).

Both are no-ops (returning False) where prctl does not exist.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable

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


def parent_death_guard(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A preexec_fn that makes the child get `sig` when its parent dies.

    The kernel ties this to the *thread* that forked the child, so the child must be
    forked from the long-lived main thread (see spawn.py), never from a worker thread.
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

    return arm


def process_start_ticks(pid: int) -> int:
    """When the process started, in clock ticks since boot (0 where /proc cannot say)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        return int(fields[19])  # field 22 of stat(5): starttime
    except (OSError, ValueError, IndexError):
        return 0


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
