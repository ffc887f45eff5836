"""servo's end of stdout, with a real ./adjust and real drivers: a servo that stops
reading holds up no timeout and no signal, and a servo that closes its end (an adjust,
and --check, whose report comes after the run) or exits stops the run as SIGTERM does
(the other commands, on MockClock: test_signals.py), leaving nothing behind; the run's
record says servo went."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from tests.fault_support import REQUEST, fault_root, started_by_fault, wait_until
from tests.streams import full_pipe
from tests.support import ADJUST, adjust_env, alive, journal_records

pytestmark = pytest.mark.e2e


@dataclass
class Servo:
    """A stand-in for servo that holds the reading end of ./adjust's stdout itself."""

    proc: trio.Process
    read_end: int
    junk: int  # bytes put in the pipe beforehand (servo had not read them yet)
    pidfile: Path

    def read_all(self) -> list[str]:
        """Read until ./adjust closes stdout; its lines, the junk cut off."""
        os.set_blocking(self.read_end, True)
        data = bytearray()
        while chunk := os.read(self.read_end, 1 << 16):
            data += chunk
        return bytes(data[self.junk:]).decode().splitlines()

    def fault(self, role: str) -> list[int]:
        return [s.pid for s in started_by_fault(self.pidfile) if s.role == role]

    def fault_running(self) -> bool:
        pids = self.fault("hanging") + self.fault("working")
        return bool(pids) and all(alive(p) for p in pids)

    def fault_gone(self) -> bool:
        return bool(self.fault("driver")) and not any(alive(p) for p in self.fault("driver"))


@contextlib.asynccontextmanager
async def servo(root: Path, tag: str, args: tuple[str, ...], *, fill: bool = False,
                **fault: str) -> AsyncIterator[Servo]:
    fault_root(root)
    pidfile = root / "fault.pids"
    if fill:  # servo is busy elsewhere (e.g. posting a progress line) and reads nothing
        read_end, write_end, junk = full_pipe()
    else:
        read_end, write_end = os.pipe()
        junk = 0
    env = adjust_env(tag, FAULT_PIDFILE=str(pidfile), **fault)
    proc = await trio.lowlevel.open_process(
        [str(ADJUST), *args], cwd=root, env=env, stdin=subprocess.PIPE, stdout=write_end,
        stderr=subprocess.PIPE)
    os.close(write_end)
    assert proc.stdin is not None
    if args[0] == "app":  # the command that reads a request
        await proc.stdin.send_all(json.dumps(REQUEST).encode())
    await proc.stdin.aclose()
    try:
        yield Servo(proc, read_end, junk, pidfile)
    finally:
        if proc.returncode is None:
            proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()
        with contextlib.suppress(OSError):
            os.close(read_end)


async def stderr_of(proc: trio.Process) -> str:
    assert proc.stderr is not None
    data = bytearray()
    while chunk := await proc.stderr.receive_some(1 << 16):
        data += chunk
    return data.decode("utf-8", "replace")


async def test_sigterm_works_while_servo_does_not_read(servo_root: Path, tag: str) -> None:
    async with servo(servo_root, tag, ("app",), fill=True, FAULT_MODE="hang") as s:
        assert await wait_until(s.fault_running, within=15)
        s.proc.send_signal(signal.SIGTERM)
        assert await wait_until(s.fault_gone, within=5), "SIGTERM had no effect"
        lines = s.read_all()
        await s.proc.wait()
    assert s.proc.returncode == 128 + signal.SIGTERM
    final = json.loads(lines[-1])
    assert (final["status"], final["reason"]) == ("aborted", "terminated"), final


#: each way a command can be running when servo closes its end, and the call of the fault
#: driver that hangs in it: an adjust (under servo's channel, as --query, --version and
#: --dry-run run: those stopped so, on MockClock, test_signals.py's
#: test_version_stopped_shows_every_driver_and_the_one_cut_as_interrupted and
#: test_dry_run_stops_when_servo_goes_as_on_sigterm), and --check's probes,
#: whose report is written after the run, to the closed pipe
COMMANDS = {
    "adjust": (("app",), "adjust"),
    "check": (("--check", "app"), "info"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
async def test_servo_closing_its_end_of_stdout_stops_the_run(
        command: str, servo_root: Path, tag: str) -> None:
    """No time limit and a silent driver: only noticing servo's closed end ends it."""
    args, phase = COMMANDS[command]
    async with servo(servo_root, tag, args, FAULT_MODE="hang", FAULT_PHASE=phase) as s:
        assert await wait_until(s.fault_running, within=15)
        os.close(s.read_end)  # servo is gone (its reader, at least)
        with trio.fail_after(10):
            await s.proc.wait()
        err = await stderr_of(s.proc)
    assert await wait_until(s.fault_gone, within=5)
    assert s.proc.returncode != 0
    assert "servo's end of stdout was closed" in err, err
    assert "Traceback" not in err, err
    if command != "check":  # it reports on the probes it ran instead
        assert s.proc.returncode == 128 + signal.SIGPIPE
        assert "while 02fault was running; the driver was stopped" in err, err
        # and the run's record says so: why it ended, and how the call that ran did
        [record] = journal_records(servo_root)
        assert (record["status"], record["exit_code"]) == ("aborted", 128 + signal.SIGPIPE)
        assert record["servo_gone"] == "servo's end of stdout was closed"
        assert record["signals"] == []
        stopped = record["calls"][-1]
        assert (stopped["driver"], stopped["call"], stopped["end"]) == ("02fault", "adjust",
                                                                         "stopped")


SERVO_THAT_EXITS = """
import json, os, subprocess, sys, time
from pathlib import Path
adjust, root, out, err, request, pidfile = sys.argv[1:7]
proc = subprocess.Popen([adjust, *sys.argv[7:]], cwd=root, stdin=subprocess.PIPE,
                        stdout=open(out, "wb"), stderr=open(err, "wb"))
proc.stdin.write(request.encode())
proc.stdin.close()
print(proc.pid, os.getpid(), flush=True)
deadline = time.monotonic() + 15
while time.monotonic() < deadline:  # until the fault driver hangs
    lines = Path(pidfile).read_text().splitlines() if Path(pidfile).exists() else []
    if any(line.endswith(" hanging") for line in lines):
        break
    time.sleep(0.02)
os._exit(0)  # servo on SIGTERM: gone at once, without a word to its driver
"""


async def test_when_servo_exits_the_run_stops_though_every_driver_is_silent(
        servo_root: Path, tmp_path: Path, tag: str) -> None:
    """stdout is a file here, so only servo's own exit can tell: the pidfd on it. It stops
    the run as SIGTERM does (channel.SERVO_GONE_SIGNAL), whatever the command runs: how
    --check ends on such a stop, through ./adjust: test_check.py's SIGTERM; the other
    commands on MockClock: test_signals.py."""
    fault_root(servo_root)
    pidfile, out, err = servo_root / "fault.pids", tmp_path / "out", tmp_path / "err"
    env = adjust_env(tag, FAULT_MODE="hang", FAULT_PIDFILE=str(pidfile))
    done = await trio.run_process(
        [sys.executable, "-c", SERVO_THAT_EXITS, str(ADJUST), str(servo_root), str(out),
         str(err), json.dumps(REQUEST), str(pidfile), "app"], env=env, capture_stdout=True)
    aggregator, servo_pid = map(int, done.stdout.split())
    assert await wait_until(lambda: not alive(aggregator), within=10), "it ran on alone"
    started = started_by_fault(pidfile)
    assert any(s.role == "hanging" for s in started)
    assert await wait_until(lambda: not any(alive(s.pid) for s in started), within=5)
    text = err.read_text()
    assert "Traceback" not in text, text
    assert (f"servo-agg stopped because servo (pid {servo_pid}) exited while 02fault was "
            "running; the driver was stopped") in text, text
    final = json.loads(out.read_text().splitlines()[-1])  # a file: still written
    assert (final["status"], final["reason"]) == ("aborted", "terminated"), final


def drain(fd: int, junk: int) -> bytes:
    os.set_blocking(fd, True)
    data = bytearray()
    while chunk := os.read(fd, 1 << 16):
        data += chunk
    os.close(fd)
    return bytes(data[junk:])


async def test_a_servo_that_reads_neither_stdout_nor_stderr_holds_up_no_timeout_or_end(
        servo_root: Path, tag: str) -> None:
    """servo reads both pipes in one loop, so when it is busy neither drains. Before: the
    first progress line blocked the aggregator in os.write (or raised BlockingIOError, on
    a pipe servo's parent left non-blocking, as stdout is here), so the stuck driver was
    never killed at T-1; and the note about the killed driver blocked on the full stderr,
    so the run never ended, even once servo read stdout again. (Whether servo's end is
    blocking is all one to servo-agg, which writes on a file description of its own:
    supervision/output.own_description. That the last lines wait for servo at most
    FINAL_WRITE_SECONDS, and are never torn, is test_servo_channel.py's.)"""
    fault_root(servo_root)
    pidfile = servo_root / "fault.pids"
    out_r, out_w, out_junk = full_pipe(blocking=False)
    err_r, err_w, err_junk = full_pipe()
    env = adjust_env(tag, FAULT_MODE="hang", OPTUNE_IO_TIMEOUT="3", FAULT_PIDFILE=str(pidfile))
    proc = await trio.lowlevel.open_process(
        [str(ADJUST), "app"], cwd=servo_root, env=env, stdin=subprocess.PIPE,
        stdout=out_w, stderr=err_w)
    os.close(out_w)
    os.close(err_w)

    def stuck() -> list[int]:
        return [s.pid for s in started_by_fault(pidfile) if s.role == "hanging"]

    stdout = bytearray()
    stderr = b""
    try:
        assert proc.stdin is not None
        await proc.stdin.send_all(json.dumps(REQUEST).encode())
        await proc.stdin.aclose()
        assert await wait_until(lambda: bool(stuck()) and all(alive(p) for p in stuck()),
                                within=15)
        # servo is busy until the stuck driver was killed (T-1, the kill cascade) and the
        # note about it is due; then it reads stdout again, never stderr
        started = time.monotonic()
        assert await wait_until(lambda: not any(alive(p) for p in stuck()), within=10), \
            "the stuck driver was not killed"
        assert time.monotonic() - started < 4
        with trio.move_on_after(30):
            async with trio.lowlevel.FdStream(out_r) as servo_reads:
                while chunk := await servo_reads.receive_some():
                    stdout += chunk
        with trio.move_on_after(5):
            await proc.wait()
        assert proc.returncode is not None, "the run never ended"
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()
        with contextlib.suppress(OSError):
            drain(out_r, out_junk)
        stderr = drain(err_r, err_junk)
    assert proc.returncode == 1
    lines = bytes(stdout[out_junk:]).decode().splitlines()
    assert all(json.loads(line) for line in lines), lines  # every line whole, in order
    final = json.loads(lines[-1])
    assert (final["reason"], final["failed_drivers"]) == ("timeout", ["02fault"]), final
    assert b"Traceback" not in stderr, stderr.decode("utf-8", "replace")
