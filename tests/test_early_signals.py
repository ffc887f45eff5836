"""Signals that arrive while servo-agg is still reading the request (no driver yet)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import trio

from tests.fault_support import wait_until
from tests.support import ADJUST, adjust_env, simple_driver, write_driver

pytestmark = pytest.mark.e2e


def reading_its_request(pid: int) -> bool:
    """servo-agg has its stop-signal handlers in place and sleeps in select() on stdin."""
    try:
        status = dict(line.split(":", 1) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines())
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except (OSError, ValueError):
        return False
    caught = int(status["SigCgt"], 16)
    handled = all(caught >> (sig - 1) & 1
                  for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
    # A kernel that hides where a task sleeps says "0": then sleeping must do.
    in_select = "select" in wchan or "poll" in wchan or wchan in ("", "0")
    return handled and status["State"].split()[0] == "S" and in_select


async def _start_waiting_for_request(root: Path, tag: str) -> trio.Process:
    proc = await trio.lowlevel.open_process(
        [str(ADJUST), "app"], cwd=root, env=adjust_env(tag),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Well into the (blocked) read of stdin, however busy the machine is.
    assert await wait_until(lambda: reading_its_request(proc.pid), within=30, every=0.01)
    return proc


async def _finish(proc: trio.Process, request: bytes) -> list[dict[str, object]]:
    assert proc.stdin and proc.stdout
    with trio.fail_after(30):
        await proc.stdin.send_all(request)
        await proc.stdin.aclose()
        out = bytearray()
        while chunk := await proc.stdout.receive_some():
            out += chunk
        await proc.wait()
    assert proc.stderr is not None
    await proc.stderr.aclose()
    await proc.stdout.aclose()
    return [json.loads(line) for line in out.decode().splitlines()]


async def test_sigusr1_while_reading_request_cancels_before_any_driver(
    servo_root: Path, tag: str
) -> None:
    write_driver(servo_root, "01web", simple_driver("web", {"cpu": {"value": 1}}, log="ran"))
    proc = await _start_waiting_for_request(servo_root, tag)
    proc.send_signal(signal.SIGUSR1)
    request = {"application": {"components": {"web": {"settings": {"cpu": {"value": 2}}}}}}
    lines = await _finish(proc, json.dumps(request).encode())
    assert proc.returncode == 1
    assert lines[-1]["status"] == "canceled"
    assert not (servo_root / "ran").exists()


async def test_sighup_while_the_request_is_read_ends_the_run_as_sigterm_does(
        servo_root: Path, tag: str) -> None:
    """A closed terminal or session must not kill the aggregator without a final line.
    SIGTERM and SIGINT take the same way: one list of servo's signals, which the early
    handlers and the run's receiver both take (test_signals.py's
    test_servos_signals_are_one_list_every_receiver_takes); the stopped-run line they
    make while the request is read: test_launch.py."""
    write_driver(servo_root, "01a", simple_driver("a", {"x": {"value": 1}}, log="ran"))
    proc = await _start_waiting_for_request(servo_root, tag)
    proc.send_signal(signal.SIGHUP)
    lines = await _finish(proc, b"")
    assert (lines[-1]["status"], lines[-1]["reason"]) == ("aborted", "terminated")
    assert "SIGHUP" in str(lines[-1]["message"])
    assert proc.returncode == 128 + signal.SIGHUP
    assert not (servo_root / "ran").exists()
