"""Which processes are a run's, and killing them all once the aggregator is gone.

Two ways of knowing, both needed where no cgroup can be made (cgroup.py):

- the run mark, an environment variable every driver gets and its descendants inherit.
  Nested runs add their mark to the one they inherited, so an outer run still finds the
  processes of an inner one. A process can drop it by starting a program with another
  environment;
- ancestry. Every driver is a child subreaper whose parent-death signal is SIGSTOP (not
  SIGKILL) while a sentinel watches, so when the aggregator dies the driver freezes with
  all it started still below it: orphans re-parent to the nearest subreaper, the driver.
  Below a known process (its pid and start time, so that a reused pid is never taken for
  it), everything is ours.

kill_trees stops every process of the trees first, until none is left running that could
fork or leave, then kills them all, deepest first. Trio-free: runs in the sentinel.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from aggregator.limits import ORPHAN_SWEEP_ROUNDS
from aggregator.process.linux import ProcStat, process_start_ticks, process_table, read_stat

#: The environment variable that marks every process started for an aggregator run: the
#: marks of this run and of every run it is nested in, outermost first, space-separated.
RUN_MARK_VAR = "SERVO_AGG_RUN"


def run_mark(pid: int | None = None) -> str:
    """This run's mark: the aggregator's pid and start time (pids alone are reused)."""
    pid = pid or os.getpid()
    return f"{pid}.{process_start_ticks(pid)}"


def nested_mark(inherited: str | None, mark: str) -> str:
    """The value drivers get: the marks of the runs this one is nested in, then its own."""
    return " ".join([*(inherited or "").split(), mark])


def carries_mark(environ: bytes, mark: str) -> bool:
    """True when an environment (NUL-separated, as /proc/PID/environ) carries `mark`."""
    prefix = f"{RUN_MARK_VAR}=".encode()
    return any(entry.startswith(prefix) and mark.encode() in entry[len(prefix):].split()
               for entry in environ.split(b"\0"))


def is_marked(pid: int, mark: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return carries_mark(f.read(), mark)
    except OSError:
        return False  # gone, or not ours to read


def marked_pids(mark: str, table: Mapping[int, ProcStat], exclude: int) -> list[int]:
    """Running processes whose environment carries `mark` (zombies have none left)."""
    return [pid for pid, stat in table.items()
            if pid != exclude and stat.running and is_marked(pid, mark)]


class Known(NamedTuple):
    """A process the aggregator told the sentinel about: its pid and when it started."""

    pid: int
    start: int

    def found_in(self, table: Mapping[int, ProcStat]) -> bool:
        """Still running and still the same process: a pid reused by another one (which
        started later) is not it."""
        stat = table.get(self.pid)
        return stat is not None and stat.running and stat.start == self.start


class _Held:
    """One process of a tree, held by a pidfd where the kernel has them, so that a signal
    can reach no other process even if this one is gone and its pid reused."""

    def __init__(self, stat: ProcStat) -> None:
        self.stat = stat
        self.fd: int | None = None
        with contextlib.suppress(OSError, AttributeError):  # before Linux 5.3: by pid
            self.fd = os.pidfd_open(stat.pid)

    def still_it(self) -> bool:
        now = read_stat(self.stat.pid)
        return now is not None and now.start == self.stat.start

    def send(self, sig: int) -> bool:
        """False when the signal did not get there: gone, or not ours to signal (a
        setuid program, say, which a driver may start but we may not stop)."""
        try:
            if self.fd is not None:
                signal.pidfd_send_signal(self.fd, sig)
            elif self.still_it():
                os.kill(self.stat.pid, sig)
            else:
                return False
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def kill_trees(roots: Iterable[int], is_ours: Callable[[ProcStat], bool], *,
               pause: float = 0.01, rounds: int = ORPHAN_SWEEP_ROUNDS) -> int:
    """SIGSTOP each root that `is_ours` and everything below it, until a look at /proc
    finds nothing new and all of it stopped; then SIGKILL it all, deepest first. Returns
    how many processes were killed.

    A stopped process can neither fork nor let a child re-parent away by exiting, so the
    tree held is the whole tree. A process below a held one is ours by ancestry; one we
    may not signal is left alone with what is below it.
    """
    held: dict[int, _Held] = {}
    passed: set[int] = set()  # looked at, and not ours or not ours to signal

    def hold(stat: ProcStat, ours: Callable[[ProcStat], bool]) -> None:
        entry = _Held(stat)
        # Checked once the pidfd is open, so it is this process that gets the signals.
        if entry.still_it() and ours(stat) and entry.send(signal.SIGSTOP):
            held[stat.pid] = entry
        else:
            passed.add(stat.pid)
            entry.close()

    def below_held(stat: ProcStat) -> bool:
        parent = held.get(stat.ppid)
        return parent is not None and parent.still_it()

    try:
        table = process_table()
        for pid in dict.fromkeys(roots):
            if pid in table and table[pid].running:
                hold(table[pid], is_ours)
        for _ in range(rounds):
            if not held:
                break
            table = process_table()
            fresh = [stat for stat in table.values() if stat.running and stat.ppid in held
                     and stat.pid not in held and stat.pid not in passed]
            for stat in fresh:
                hold(stat, below_held)
            settled = all(not (now := table.get(pid)) or not now.running or now.stopped
                          for pid in held)
            if not fresh and settled:
                break
            if not fresh:
                time.sleep(pause)  # the stops take effect when each process is next scheduled
        for entry in reversed(list(held.values())):
            entry.send(signal.SIGKILL)
        return len(held)
    finally:
        for entry in held.values():
            entry.close()
