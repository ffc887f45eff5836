"""Supervision edges the fault matrix cannot pin down end to end: a slow reader after the
driver's exit, a call budget, and how a cancel that kills the driver is classified."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from aggregator.protocol.vocabulary import Call
from aggregator.root.discovery import Driver
from aggregator.supervision.call import Supervisor
from aggregator.supervision.control import RunControl
from aggregator.supervision.spec import CallSpec
from tests.support import TAG_VAR, real_supervisor, write_driver

pytestmark = pytest.mark.e2e


def supervision(root: Path, tag: str, io_timeout: float | None = 3.0,
                control: RunControl | None = None) -> Supervisor:
    return real_supervisor(root, {**os.environ, TAG_VAR: tag}, io_timeout=io_timeout,
                           control=control)


def spec(root: Path, name: str, body: str, **extra: Any) -> CallSpec:
    return CallSpec(Driver(name, write_driver(root, name, body)), Call.ADJUST, ("app",),
                    **extra)


async def test_all_a_driver_wrote_before_exiting_is_read_however_slow_we_are(
        servo_root: Path, tag: str) -> None:
    """The exit drain stops waiting for a grandchild, never for data already written:
    here the (enlarged) pipe holds ~400 KB when the driver exits, and reading it takes
    seconds."""
    body = """
        import fcntl, json, sys
        fcntl.fcntl(1, fcntl.F_SETPIPE_SZ, 1024 * 1024)
        for i in range(8000):
            sys.stdout.write(json.dumps({"progress": i / 80, "message": "m" * 20}) + "\\n")
        print(json.dumps({"status": "ok", "reason": "success"}))
        """
    seen = 0

    def slow(message: dict[str, Any]) -> None:  # an aggregator on a very busy machine
        nonlocal seen
        seen += 1
        time.sleep(0.0002)

    with trio.fail_after(60):
        outcome = await supervision(servo_root, tag).call(spec(servo_root, "10burst", body),
                                 slow)
    assert outcome.problem is None, outcome.problem
    assert outcome.result == {"status": "ok", "reason": "success"}
    assert seen == 8000


async def test_a_partial_line_left_behind_by_an_exited_driver_is_bad_output(
        servo_root: Path, tag: str) -> None:
    """Its grandchild holds stdout, so there is no end of stream to notice the fragment."""
    body = """
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        sys.stdout.write('{"status": "ok"')
        sys.stdout.flush()
        os._exit(0)
        """
    with trio.fail_after(30):
        outcome = await supervision(servo_root, tag, io_timeout=None).call(
                                 spec(servo_root, "10half", body))
    assert outcome.problem is not None
    assert outcome.problem.reason == "bad-output"
    assert "without a newline" in outcome.problem.detail


async def test_a_call_deadline_ends_a_chatty_driver_in_time(servo_root: Path,
                                                            tag: str) -> None:
    """Progress lines keep the line limit happy; the call's own deadline still ends it."""
    body = """
        import json, time
        while True:
            print(json.dumps({"progress": 1}), flush=True)
            time.sleep(0.1)
        """
    started = trio.current_time()
    deadline = started + 1.5
    with trio.fail_after(30):
        outcome = await supervision(servo_root, tag).call(
            spec(servo_root, "10chatty", body), deadline=deadline)
    assert outcome.problem is not None and outcome.problem.reason == "timeout"
    assert "did not answer within the time" in outcome.problem.detail
    assert trio.current_time() < deadline + 1.0  # the kill cascade fitted (leeway: load)


async def test_a_driver_without_a_sigusr1_handler_that_dies_of_it_was_canceled(
        servo_root: Path, tag: str) -> None:
    body = """
        import json, time
        print(json.dumps({"progress": 1}), flush=True)
        time.sleep(60)
        """
    control = RunControl()
    sup = supervision(servo_root, tag, io_timeout=None, control=control)

    def cancel_on_first_line(message: dict[str, Any]) -> None:
        control.cancel()

    with trio.fail_after(30):
        outcome = await sup.call(spec(servo_root, "10plain", body), cancel_on_first_line)
    assert outcome.exit_code == -signal.SIGUSR1
    assert outcome.problem is not None and outcome.problem.reason == "canceled"
    assert "SIGUSR1" in outcome.problem.detail


async def test_a_grandchild_holding_stdin_does_not_block_the_request_forever(
        servo_root: Path, tag: str) -> None:
    """The driver exits without reading a large request; its child keeps stdin open and
    does not read either. Feeding stdin stops when the driver is gone."""
    body = """
        import json, os, subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(json.dumps({"status": "ok", "reason": "success"}), flush=True)
        os._exit(0)
        """
    request = b'{"blob": "' + b"x" * (1 << 20) + b'"}\n'
    with trio.fail_after(20):
        outcome = await supervision(servo_root, tag, io_timeout=None).call(
                                 spec(servo_root, "10skips", body, stdin=request))
    assert outcome.problem is None, outcome.problem
    assert outcome.result == {"status": "ok", "reason": "success"}
