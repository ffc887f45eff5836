"""A driver process as trio sees it: its pipes as streams, its exit via a pidfd.

Why not trio.lowlevel.open_process: it forks from a worker thread, and Linux delivers
the parent-death signal when the *forking thread* exits (trio retires idle workers after
10 s), which would kill healthy drivers. So on Linux the fork happens on the main thread
(fork.py) and the exit is awaited on a pidfd, which does not reap: the zombie
keeps the process-group id reserved until the group is killed. Elsewhere trio's own
process support is used, without the guard.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import select
import subprocess
import termios
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from aggregator.process.call_limits import CallLimits, LimitHits
from aggregator.process.confine import PreparedCall
from aggregator.process.fork import (
    UNWATCHED,
    Guards,
    StartedProcess,
    can_fork_here,
    fork_driver,
)
from aggregator.process.resources import ResourceUse


@dataclass(eq=False)
class DriverProcess:
    """A started driver: its pid (= its process-group id) and the parent ends of its pipes."""

    pid: int
    stdin: trio.lowlevel.FdStream | trio.abc.SendStream
    stdout: trio.abc.ReceiveStream
    stderr: trio.abc.ReceiveStream
    _popen: subprocess.Popen[bytes] | None = None
    _pidfd: int | None = None
    _trio_process: trio.Process | None = None
    _exited: bool = field(default=False)
    _age_at_open: float = 0.0  # how long a head start had been running when taken over
    #: what the driver (and the descendants it waited for) used, once reaped here
    resource_use: ResourceUse | None = None
    _limited: PreparedCall | None = None  # its limits: its own cgroup, if any
    _hits: LimitHits = field(default_factory=LimitHits)

    @property
    def age_at_open(self) -> float:
        """Seconds the process had already run when the supervisor got it (a head start)."""
        return self._age_at_open

    @property
    def returncode(self) -> int | None:
        if self._popen is not None:
            return self._popen.returncode
        assert self._trio_process is not None
        return self._trio_process.returncode

    async def wait_exited(self) -> None:
        """Return once the process has exited; on Linux it stays a zombie until reap()."""
        if self._pidfd is not None:
            await trio.lowlevel.wait_readable(self._pidfd)
        else:
            assert self._trio_process is not None
            await self._trio_process.wait()
        self._exited = True

    def has_exited(self) -> bool:
        if self._exited:
            return True
        if self._pidfd is not None:
            ready, _, _ = select.select([self._pidfd], [], [], 0)
            self._exited = bool(ready)
        elif self._trio_process is not None:
            self._exited = self._trio_process.poll() is not None
        return self._exited

    def stdout_pending(self) -> int:
        """Bytes waiting in the stdout pipe (0 where that cannot be asked)."""
        if not isinstance(self.stdout, trio.lowlevel.FdStream):
            return 0
        count = array.array("i", [0])
        try:
            fcntl.ioctl(self.stdout.fileno(), termios.FIONREAD, count)
        except (OSError, ValueError):
            return 0
        return count[0]

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the driver's whole process group (nothing if it is gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def signal_leader(self, sig: int) -> None:
        if self.has_exited():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def reap(self) -> int | None:
        """Collect the exit status of an exited process, and what it used; safe to call
        twice."""
        if self._popen is not None:
            code = self._wait4(block=self.has_exited())
            if self._pidfd is not None and code is not None:
                os.close(self._pidfd)
                self._pidfd = None
                self._exited = True
            return code
        assert self._trio_process is not None
        return self._trio_process.poll()

    def _wait4(self, *, block: bool) -> int | None:
        """Popen.wait()/poll() through wait4(2), which also says what the process used."""
        popen = self._popen
        assert popen is not None
        if popen.returncode is not None:
            return popen.returncode
        try:
            pid, status, usage = os.wait4(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: subprocess's own answer
            return popen.poll()
        if pid == 0:
            return None
        popen.returncode = os.waitstatus_to_exitcode(status)
        self.resource_use = ResourceUse.of_rusage(usage)
        self._read_limits()
        return popen.returncode

    def _read_limits(self) -> None:
        """Its own cgroup, if it had one: what all in it used (rather than the rusage of
        the driver and what it waited for) and the limits it hit; then the cgroup goes."""
        limited = self._limited
        if limited is None:
            return
        if limited.cgroup is not None:
            self.resource_use = limited.cgroup.use() or self.resource_use
            self._hits = limited.cgroup.hits()
        limited.discard()

    def limit_hits(self) -> LimitHits:
        """How often it ran into a limit its cgroup counts, once reaped."""
        return self._hits

    async def aclose_pipes(self) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            await stream.aclose()


async def open_driver(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str],
    early: StartedProcess | None = None, guards: Guards = UNWATCHED,
    limits: CallLimits | None = None,
) -> DriverProcess:
    """Start `argv` in a new session with the run's `guards`, held to `limits` (or take
    over `early`, a head start already running it); raises OSError if it cannot run.
    Outside Linux no limit is enforced."""
    if early is None and not can_fork_here():
        proc = await trio.lowlevel.open_process(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=cwd, env=dict(env), start_new_session=True,
        )
        assert proc.stdin and proc.stdout and proc.stderr
        return DriverProcess(proc.pid, proc.stdin, proc.stdout, proc.stderr,
                             _trio_process=proc)
    started = early
    if started is None:
        # On the main thread on purpose (see fork.py); fork+exec takes a few ms.
        started = fork_driver(argv, cwd, env, guards, limits)
    await trio.lowlevel.checkpoint()
    return DriverProcess(
        started.pid,
        trio.lowlevel.FdStream(started.stdin),
        trio.lowlevel.FdStream(started.stdout),
        trio.lowlevel.FdStream(started.stderr),
        _popen=started.popen, _pidfd=started.pidfd, _age_at_open=started.age(),
        _limited=started.limited,
    )
