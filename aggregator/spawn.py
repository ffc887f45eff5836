"""Starting one driver process: own session, pipes, parent-death guard, exit via pidfd.

Why not trio.lowlevel.open_process: it forks from a worker thread, and Linux delivers
the parent-death signal when the *forking thread* exits (trio retires idle workers after
10 s), which would kill healthy drivers. So on Linux the fork happens on the main thread
(a few milliseconds, one driver at a time) and the exit is awaited on a pidfd, which
does not reap: the zombie keeps the process-group id reserved until the group is killed.
Elsewhere trio's own process support is used, without the guard.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import select
import signal
import subprocess
import termios
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from .limits import DRIVER_STDOUT_PIPE_BYTES
from .linux import parent_death_guard
from .sentinel import RUN_MARK_VAR, run_mark


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
        """Collect the exit status of an exited process; safe to call twice."""
        if self._popen is not None:
            code = self._popen.wait() if self.has_exited() else self._popen.poll()
            if self._pidfd is not None and code is not None:
                os.close(self._pidfd)
                self._pidfd = None
                self._exited = True
            return code
        assert self._trio_process is not None
        return self._trio_process.poll()

    async def aclose_pipes(self) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            await stream.aclose()


def _child_environment(base: Mapping[str, str], servo_root: Path) -> dict[str, str]:
    """The aggregator's environment with the servo root appended to PYTHONPATH."""
    env = dict(base)
    existing = env.get("PYTHONPATH", "")
    parts = [p for p in existing.split(os.pathsep) if p] if existing else []
    if str(servo_root) not in parts:
        parts.append(str(servo_root))
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env[RUN_MARK_VAR] = run_mark()  # how the sentinel finds what a driver left running
    return env


async def start_driver(
    argv: Sequence[str], servo_root: Path, base_env: Mapping[str, str]
) -> DriverProcess:
    """Start `argv` in a new session with cwd = servo root; raises OSError if it cannot run."""
    env = _child_environment(base_env, servo_root)
    guard = parent_death_guard(signal.SIGKILL)
    if guard is None or not hasattr(os, "pidfd_open"):
        proc = await trio.lowlevel.open_process(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=servo_root, env=env, start_new_session=True,
        )
        assert proc.stdin and proc.stdout and proc.stderr
        return DriverProcess(proc.pid, proc.stdin, proc.stdout, proc.stderr,
                             _trio_process=proc)
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
        # On the main thread on purpose (see the module docstring); fork+exec takes ~1 ms.
        popen = subprocess.Popen(  # noqa: ASYNC220
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
    except OSError:  # pragma: no cover - kernels before 5.3
        popen.kill()
        popen.wait()
        for fd in parent_ends:
            os.close(fd)
        raise
    await trio.lowlevel.checkpoint()
    return DriverProcess(
        popen.pid,
        trio.lowlevel.FdStream(parent_ends[0]),
        trio.lowlevel.FdStream(parent_ends[1]),
        trio.lowlevel.FdStream(parent_ends[2]),
        _popen=popen, _pidfd=pidfd,
    )
