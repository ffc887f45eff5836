"""A watcher that outlives the aggregator, so that SIGKILL on it leaves nothing behind.

PR_SET_PDEATHSIG (linux.py) stops a running driver when the aggregator dies, but not what
the driver started, and no cleanup code of ours runs after SIGKILL. So at start the
aggregator forks this sentinel into its own session, holding the read end of a pipe whose
write end only the aggregator has. The pipe reads end-of-file once the aggregator is gone,
however it went; the sentinel then kills every process that carries this run's mark in
its environment (spawn.py gives it to each driver, and descendants inherit it), round
after round until none is left, and exits. On a normal end the aggregator dismisses it
(one byte, then EOF) and reaps it: no scan, and no process outlives the aggregator.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aggregator.limits import ORPHAN_SWEEP_ROUNDS
from aggregator.process.linux import process_start_ticks

#: The environment variable that marks every process started for one aggregator run.
RUN_MARK_VAR = "SERVO_AGG_RUN"


def run_mark(pid: int | None = None) -> str:
    """This run's mark: the aggregator's pid and start time (pids alone are reused)."""
    pid = pid or os.getpid()
    return f"{pid}.{process_start_ticks(pid)}"


def marked_pids(mark: str, exclude: int) -> list[int]:
    """Running processes whose environment carries `mark` (zombies have none left)."""
    needle = f"{RUN_MARK_VAR}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == exclude:
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def kill_marked(mark: str, pause: float = 0.05) -> int:
    """SIGKILL every marked process until none is left; returns how many were found."""
    killed = 0
    for _ in range(ORPHAN_SWEEP_ROUNDS):
        pids = marked_pids(mark, exclude=os.getpid())
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        killed += len(pids)
        time.sleep(pause)  # let them die before looking again
    return killed


def _watch(read_end: int, mark: str) -> None:
    """The sentinel's whole life (in the forked child; never returns to the caller)."""
    os.setsid()  # out of the aggregator's group and terminal: servo's signals are not ours
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)  # servo waits for EOF on our stdout: do not hold it
    os.dup2(read_end, 3)
    os.closerange(4, 65536)
    while True:
        try:
            if os.read(3, 512):
                return  # dismissed: the aggregator ended normally and reaped its drivers
            break
        except InterruptedError:
            continue
        except OSError:
            break
    kill_marked(mark)


@dataclass
class Sentinel:
    """The aggregator's handle on its sentinel: its pid and the pipe it watches."""

    pid: int
    write_end: int

    def dismiss(self) -> None:
        """Normal end (every driver reaped): tell the sentinel to stand down, then reap it."""
        with contextlib.suppress(OSError):
            os.write(self.write_end, b"done")
        with contextlib.suppress(OSError):
            os.close(self.write_end)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def start_sentinel() -> Sentinel | None:
    """Fork the sentinel (call before any thread or driver exists).

    The write end of the pipe stays open until dismiss(); if this process dies first,
    the kernel closes it, which is the signal the sentinel waits for.
    """
    if not sys.platform.startswith("linux") or not hasattr(os, "pipe2"):
        return None
    mark = run_mark()
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, checked end to end
        try:
            os.close(write_end)
            _watch(read_end, mark)
        finally:
            os._exit(0)
    os.close(read_end)
    return Sentinel(pid, write_end)
