"""Forking one driver: pipes, own session, parent-death guard, a pidfd for its exit.

No trio here: a driver may get a head start (headstart.py) before trio, which takes
~90 ms to import, is even loaded. driver_process.py wraps the result in trio streams.
Linux only; elsewhere driver_process.py uses trio's own process support.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import resource
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aggregator.limits import DRIVER_STDOUT_PIPE_BYTES, FD_MARGIN, FDS_PER_DRIVER
from aggregator.process.lineage import RUN_MARK_VAR, nested_mark, run_mark
from aggregator.process.linux import parent_death_guard


def can_fork_here() -> bool:
    """True where drivers are forked on the main thread with the guard and a pidfd."""
    return hasattr(os, "pidfd_open") and parent_death_guard(signal.SIGKILL) is not None


def descriptor_limit() -> int:
    """The soft RLIMIT_NOFILE (`ulimit -n`): the most descriptors this process may hold."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def drivers_that_fit() -> int:
    """How many more drivers may run at once before descriptors run short: what the
    limit leaves beyond those open now and FD_MARGIN, FDS_PER_DRIVER each."""
    try:
        open_now = len(os.listdir("/proc/self/fd")) - 1  # less the listing's own
    except OSError:  # no /proc (or not one descriptor left to list it with)
        return 0
    return max(0, (descriptor_limit() - open_now - FD_MARGIN) // FDS_PER_DRIVER)


class OutOfDescriptors(OSError):
    """A driver could not be started for want of descriptors (EMFILE), said in words."""

    def __str__(self) -> str:
        return f"too many open files: the limit is {descriptor_limit()} (ulimit -n)"


#: Each driver's environment names the run that started it, so that its own logs can be
#: matched to the run's record (an outer run's id is replaced: the record names it).
RUN_ID_VAR = "SERVO_AGG_RUN_ID"


def child_environment(base: Mapping[str, str], servo_root: Path,
                      run_id: str | None = None) -> dict[str, str]:
    """The aggregator's environment with the servo root appended to PYTHONPATH, and the
    run's id (RUN_ID_VAR) when given."""
    env = dict(base)
    if run_id is not None:
        env[RUN_ID_VAR] = run_id
    existing = env.get("PYTHONPATH", "")
    parts = [p for p in existing.split(os.pathsep) if p] if existing else []
    if str(servo_root) not in parts:
        parts.append(str(servo_root))
    env["PYTHONPATH"] = os.pathsep.join(parts)
    # How the sentinel finds what a driver left running; an outer run's mark is kept.
    env[RUN_MARK_VAR] = nested_mark(env.get(RUN_MARK_VAR), run_mark())
    return env


@dataclass(frozen=True)
class Guards:
    """How each driver of a run is tied to it (the run decides, once).

    Without a sentinel, the kernel kills a driver whose aggregator died (SIGKILL). With one
    (sentinel.Sentinel.guards), the driver is stopped instead (SIGSTOP) and is a child
    subreaper, so that what it started stays below it for the sentinel to find and kill,
    and the sentinel is told of it.
    """

    death_signal: int = signal.SIGKILL
    subreaper: bool = False
    report: Callable[[int], None] | None = None  # in the parent, with the new pid


#: The guards where no sentinel watches: the kernel's SIGKILL when the aggregator dies.
UNWATCHED = Guards()


@dataclass(eq=False)
class StartedProcess:
    """A forked driver and the parent's ends of its pipes (raw fds, owned by this object)."""

    popen: subprocess.Popen[bytes]
    pidfd: int
    stdin: int
    stdout: int
    stderr: int
    _started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def age(self) -> float:
        """Seconds since the fork: a call taken over from a head start counts from here."""
        return time.monotonic() - self._started_at

    def discard(self) -> None:
        """Kill the whole group and reap it, for a head start nobody took up."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait()
        for fd in (self.pidfd, self.stdin, self.stdout, self.stderr):
            with contextlib.suppress(OSError):
                os.close(fd)


def fork_driver(argv: Sequence[str], servo_root: Path, env: Mapping[str, str],
                guards: Guards = UNWATCHED) -> StartedProcess:
    """Fork+exec `argv` on the calling (main) thread; raises OSError if it cannot run.

    The main thread matters: Linux sends the parent-death signal when the *forking thread*
    exits, and trio's process helper forks from worker threads it retires after 10 s.
    Out of descriptors, it raises OutOfDescriptors, which names the limit.
    """
    try:
        return _fork_driver(argv, servo_root, env, guards)
    except OSError as exc:
        if exc.errno == errno.EMFILE and not isinstance(exc, OutOfDescriptors):
            raise OutOfDescriptors(errno.EMFILE, os.strerror(errno.EMFILE)) from exc
        raise


def _fork_driver(argv: Sequence[str], servo_root: Path, env: Mapping[str, str],
                 guards: Guards) -> StartedProcess:
    guard = parent_death_guard(guards.death_signal, subreaper=guards.subreaper)
    opened: list[int] = []
    try:
        for _ in range(3):
            opened.extend(os.pipe2(os.O_CLOEXEC))
    except OSError:
        for fd in opened:
            os.close(fd)
        raise
    stdin_r, stdin_w, stdout_r, stdout_w, stderr_r, stderr_w = opened
    with contextlib.suppress(OSError):  # backpressure, so servo hears progress promptly
        fcntl.fcntl(stdout_w, fcntl.F_SETPIPE_SZ, DRIVER_STDOUT_PIPE_BYTES)
    parent_ends = (stdin_w, stdout_r, stderr_r)
    try:
        popen = subprocess.Popen(
            list(argv), stdin=stdin_r, stdout=stdout_w, stderr=stderr_w,
            cwd=servo_root, env=env, start_new_session=True, preexec_fn=guard,
            close_fds=True,
        )
    except BaseException:
        for fd in parent_ends:
            os.close(fd)
        raise
    finally:
        for fd in (stdin_r, stdout_w, stderr_w):
            os.close(fd)
    try:
        pidfd = os.pidfd_open(popen.pid)
    except OSError:  # kernels before 5.3, or out of descriptors
        popen.kill()
        popen.wait()
        for fd in parent_ends:
            os.close(fd)
        raise
    if guards.report is not None:
        guards.report(popen.pid)
    return StartedProcess(popen, pidfd, *parent_ends)
