"""A watcher that outlives the aggregator, so that SIGKILL on it leaves nothing behind.

No cleanup code of ours runs after SIGKILL. So at start the aggregator makes the run's
cgroup where it can (cgroup.py), forks this sentinel into its own session (and outside
that cgroup), holding the read end of a pipe whose write end only the aggregator has,
and moves into the cgroup. Over the pipe the aggregator tells it of each driver it forks
(pid and start time). The pipe reads end-of-file once the aggregator is gone, however it
went; then, round after round until nothing is left, the sentinel kills the run's
cgroup, and every tree below a driver it was told of or a process carrying the run's mark
(lineage.py), removes the cgroup and exits.

On a normal end the aggregator dismisses it ("done", then EOF) and reaps it: every driver
has been reaped by then, so the sentinel only checks that none it was told of still runs
and that nothing but the aggregator is left in the cgroup.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aggregator.limits import ORPHAN_SWEEP_ROUNDS
from aggregator.process.cgroup import (
    RunCgroup,
    kill_cgroup,
    members,
    remove_cgroup,
    wait_empty,
)
from aggregator.process.fork import Guards
from aggregator.process.lineage import Known, is_marked, kill_trees, marked_pids, run_mark
from aggregator.process.linux import ProcStat, process_start_ticks, process_table, read_stat

#: The aggregator ended normally, every driver reaped: stand down.
DISMISS = b"done"


def parse_reports(data: bytes) -> tuple[list[Known], bool, bytes]:
    """Whole lines of `data` (b"<pid> <start>" each, or DISMISS): the processes reported,
    whether the sentinel was dismissed, and the unfinished last line."""
    *lines, rest = data.split(b"\n")
    known: list[Known] = []
    for line in lines:
        if line == DISMISS:
            return known, True, b""
        with contextlib.suppress(ValueError):
            pid, start = map(int, line.split())
            known.append(Known(pid, start))
    return known, False, rest


def ours(known: dict[int, int], mark: str) -> Callable[[ProcStat], bool]:
    """Whether a process is a root of the run's trees: one the aggregator reported, the
    same one still (its start time matches), or one carrying the run's mark."""
    def check(stat: ProcStat) -> bool:
        return known.get(stat.pid) == stat.start or is_marked(stat.pid, mark)
    return check


@dataclass
class _Watch:
    """The sentinel's state: what it was told, and what it must clean up."""

    mark: str
    cgroup: Path | None
    known: dict[int, int] = field(default_factory=dict)  # pid -> start time

    def after_death(self, pause: float = 0.05) -> int:
        """Everything of the run, killed round after round; returns how many were found."""
        killed = 0
        for _ in range(ORPHAN_SWEEP_ROUNDS):
            found = kill_cgroup(self.cgroup) if self.cgroup is not None else 0
            table = process_table()
            roots = self._still_running(table)
            roots += marked_pids(self.mark, table, exclude=os.getpid())
            found += kill_trees(roots, ours(self.known, self.mark))
            if not found:
                break
            killed += found
            time.sleep(pause)  # let them die before looking again
        self._remove_cgroup()
        return killed

    def after_run(self) -> None:
        """Dismissed: every driver was reaped, so this finds nothing unless something
        went wrong. The aggregator is still in the cgroup: the next run removes it."""
        reported = {pid: stat for pid in self.known if (stat := read_stat(pid)) is not None}
        if alive := self._still_running(reported):
            kill_trees(alive, ours(self.known, self.mark))
        if self.cgroup is not None:
            for pid in set(members(self.cgroup)) - {os.getppid()}:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)  # in the run's cgroup: ours, and left over

    def _still_running(self, table: Mapping[int, ProcStat]) -> list[int]:
        """The reported drivers that still run (and are still themselves)."""
        return [pid for pid, start in self.known.items() if Known(pid, start).found_in(table)]

    def _remove_cgroup(self) -> None:
        if self.cgroup is not None:
            wait_empty(self.cgroup)
            remove_cgroup(self.cgroup)


def _watch(read_end: int, watch: _Watch) -> None:
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
    pending = b""
    while True:
        try:
            data = os.read(3, 4096)
        except InterruptedError:
            continue
        except OSError:
            break
        if not data:
            break
        reported, dismissed, pending = parse_reports(pending + data)
        watch.known.update((k.pid, k.start) for k in reported)
        if dismissed:
            watch.after_run()
            return
    watch.after_death()


@dataclass
class Sentinel:
    """The aggregator's handle on its sentinel: its pid, the pipe it watches, the cgroup."""

    pid: int
    write_end: int
    cgroup: RunCgroup | None = None

    def report(self, pid: int) -> None:
        """Tell the sentinel of a driver just forked (not reaped yet, so its pid is not
        reused before its start time is read). A full pipe drops the report: the mark and
        the cgroup still cover the driver, and the aggregator never blocks on this."""
        with contextlib.suppress(OSError):
            os.write(self.write_end, b"%d %d\n" % (pid, process_start_ticks(pid)))

    def guards(self) -> Guards:
        """How drivers are started while this sentinel watches (fork.Guards)."""
        return Guards(death_signal=signal.SIGSTOP, subreaper=True, report=self.report)

    def dismiss(self) -> None:
        """Normal end (every driver reaped): tell the sentinel to stand down, then reap it."""
        with contextlib.suppress(OSError):  # a full pipe: EOF then, after what it holds
            os.write(self.write_end, DISMISS + b"\n")
        with contextlib.suppress(OSError):
            os.close(self.write_end)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def containment(sentinel: Sentinel | None) -> tuple[bool, str]:
    """What ends a run's processes if the aggregator is SIGKILLed, in words for the
    operator (--check, -v), and whether that reaches every descendant."""
    if sentinel is None:
        return False, ("no sentinel (not Linux, or no process could be forked): only each "
                       "driver's parent-death signal, so a driver's own children may stay")
    if sentinel.cgroup is not None:
        return True, (f"the run's own cgroup (servo-agg.<pid>.<start>) below "
                      f"{sentinel.cgroup.path.parent}, killed whole by the sentinel, daemons "
                      "that left their session included")
    return True, ("the sentinel kills every process tree below a driver, by pid and start "
                  "time (no cgroup here: that needs cgroup v2 and write access to "
                  "servo-agg's own cgroup)")


def start_sentinel() -> Sentinel | None:
    """Make the run's cgroup where possible, fork the sentinel, move into the cgroup (call
    before any thread or driver exists).

    The write end of the pipe stays open until dismiss(); if this process dies first,
    the kernel closes it, which is the signal the sentinel waits for.
    """
    if not sys.platform.startswith("linux") or not hasattr(os, "pipe2"):
        return None
    mark = run_mark()
    cgroup = RunCgroup.create(mark)
    try:
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
    except OSError:  # out of descriptors or processes: the drivers' own guard is all
        if cgroup is not None:
            remove_cgroup(cgroup.path)
        return None
    if pid == 0:  # pragma: no cover - runs in the child, checked end to end
        try:
            os.close(write_end)
            _watch(read_end, _Watch(mark, cgroup.path if cgroup is not None else None))
        finally:
            os._exit(0)
    os.close(read_end)
    os.set_blocking(write_end, False)  # a report never blocks the aggregator
    if cgroup is not None and not cgroup.enter():
        cgroup = None  # removed; the sentinel finds nothing where it was
    return Sentinel(pid, write_end, cgroup)
