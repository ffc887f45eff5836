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
from typing import NamedTuple

from aggregator.limits import DRIVER_STDOUT_PIPE_BYTES, FD_MARGIN, FDS_PER_DRIVER
from aggregator.process.call_limits import CallLimits
from aggregator.process.confine import Confinement, PreparedCall
from aggregator.process.lineage import RUN_MARK_VAR, nested_mark, run_mark
from aggregator.process.linux import parent_death_guard


def can_fork_here() -> bool:
    """True where drivers are forked on the main thread with the guard and a pidfd."""
    return hasattr(os, "pidfd_open") and parent_death_guard(signal.SIGKILL) is not None


def descriptor_limit() -> int:
    """The soft RLIMIT_NOFILE (`ulimit -n`): the most descriptors this process may hold."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def fitting(limit: int, open_now: int) -> int:
    """How many drivers fit in `limit` descriptors with `open_now` open: FDS_PER_DRIVER
    each, FD_MARGIN kept free."""
    return max(0, (limit - open_now - FD_MARGIN) // FDS_PER_DRIVER)


def drivers_that_fit() -> int:
    """How many more drivers may run at once before descriptors run short: what the
    limit leaves beyond those open now and FD_MARGIN, FDS_PER_DRIVER each."""
    try:
        open_now = len(os.listdir("/proc/self/fd")) - 1  # less the listing's own
    except OSError:  # no /proc (or not one descriptor left to list it with)
        return 0
    return fitting(descriptor_limit(), open_now)


#: An RLIMIT_NOFILE (soft, hard) pair.
Limits = tuple[int, int]


def _ceiling(hard: int) -> int:
    """The most the soft limit can be raised to: the hard limit, or where that is
    unlimited, the kernel's own bound on descriptors per process (fs.nr_open)."""
    if hard != resource.RLIM_INFINITY:
        return hard
    try:
        return int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        return 1 << 20


def raise_descriptor_limit() -> Limits | None:
    """Raise the soft RLIMIT_NOFILE to the hard limit, as supervisors do: drivers run at
    once, each holding FDS_PER_DRIVER of ours, and the soft limit servo left us (often
    1024, or 256) is no bound a supervisor should keep. Returns the limits we had, which
    each driver gets back (Guards.descriptors) and restore_descriptor_limit puts back;
    None when nothing changed."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = _ceiling(hard)
        if soft == resource.RLIM_INFINITY or soft >= target:
            return None
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError):
        return None
    return soft, hard


def restore_descriptor_limit(inherited: Limits | None) -> None:
    """Our limits as they were before raise_descriptor_limit (a run in a process that
    lives on, as in tests, leaves them as it found them)."""
    if inherited is not None:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, inherited)


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


class Guards(NamedTuple):
    """How each driver of a run is tied to it, and what it gets back of what the run
    changed for itself (the run decides, once).

    Without a sentinel, the kernel kills a driver whose aggregator died (SIGKILL). With one
    (sentinel.Sentinel.guards), the driver is stopped instead (SIGSTOP) and is a child
    subreaper, so that what it started stays below it for the sentinel to find and kill,
    and the sentinel is told of it.
    """

    death_signal: int = signal.SIGKILL
    subreaper: bool = False
    report: Callable[[int], None] | None = None  # in the parent, with the new pid
    #: the RLIMIT_NOFILE each driver gets, set between fork and exec: the limits servo-agg
    #: had before it raised its own (None: ours, unchanged)
    descriptors: Limits | None = None
    #: how a driver's resource limits are enforced in this run (None: by rlimits alone)
    confinement: Confinement | None = None


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
    limited: PreparedCall | None = None  # its limits: its cgroup, to read and remove
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
        if self.limited is not None:
            self.limited.discard()
        for fd in (self.pidfd, self.stdin, self.stdout, self.stderr):
            with contextlib.suppress(OSError):
                os.close(fd)


def _prepare_child(guards: Guards) -> Callable[[], None] | None:
    """What the child does between fork and exec: the parent-death guard, and the
    descriptor limit it would have had without us."""
    guard = parent_death_guard(guards.death_signal, subreaper=guards.subreaper)
    limits = guards.descriptors
    if limits is None:
        return guard

    def prepare() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)
        if guard is not None:
            guard()

    return prepare


def fork_driver(argv: Sequence[str], servo_root: Path, env: Mapping[str, str],
                guards: Guards = UNWATCHED, limits: CallLimits | None = None) -> StartedProcess:
    """Fork+exec `argv` on the calling (main) thread, held to `limits` from before its
    exec; raises OSError if it cannot run.

    The main thread matters: Linux sends the parent-death signal when the *forking thread*
    exits, and trio's process helper forks from worker threads it retires after 10 s.
    Out of descriptors, it raises OutOfDescriptors, which names the limit.
    """
    limited = None
    if limits is not None:
        limited = (guards.confinement or Confinement()).prepare(limits)
    try:
        return _fork_driver(argv, servo_root, env, guards, limited)
    except OSError as exc:
        if limited is not None:
            limited.discard()
        if exc.errno == errno.EMFILE and not isinstance(exc, OutOfDescriptors):
            raise OutOfDescriptors(errno.EMFILE, os.strerror(errno.EMFILE)) from exc
        raise
    except subprocess.SubprocessError as exc:  # the child could not be held to its limits
        if limited is not None:
            limited.discard()
        raise OSError(errno.EPERM, "could not be held to its resource limits before it "
                                   f"started ({exc})") from exc


def _in_child(*steps: Callable[[], None] | None) -> Callable[[], None] | None:
    """One preexec_fn doing each step in order (None: nothing to do in the child)."""
    todo = [step for step in steps if step is not None]
    if not todo:
        return None

    def run_all() -> None:
        for step in todo:
            step()

    return run_all


def _fork_driver(argv: Sequence[str], servo_root: Path, env: Mapping[str, str],
                 guards: Guards, limited: PreparedCall | None) -> StartedProcess:
    preexec = _in_child(_prepare_child(guards), None if limited is None else limited.in_child)
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
            cwd=servo_root, env=env, start_new_session=True, preexec_fn=preexec,
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
    return StartedProcess(popen, pidfd, *parent_ends, limited=limited)
