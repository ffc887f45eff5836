"""Every driver bounded, end to end: ./adjust and ./measure run as servo runs them, against
drivers that hang, chatter forever or take too much memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import run_adjust, write_driver

pytestmark = pytest.mark.e2e

#: An adjust request for the one setting of `hang_driver`.
REQUEST = {"application": {"components": {"h": {"settings": {"x": {"value": 2}}}}}}


def hang_driver() -> str:
    """Answers --info and --query, then hangs in its adjust without a word."""
    descriptor = {"application": {"components": {"h": {"settings": {"x": {"value": 1}}}}}}
    return f"""
        import json, sys, time
        if "--info" in sys.argv:
            print(json.dumps({{"version": "1", "has_cancel": False}}))
            sys.exit(0)
        if "--query" in sys.argv:
            print(json.dumps({descriptor!r}))
            sys.exit(0)
        sys.stdin.read()
        time.sleep(3600)
        """


async def test_a_hung_driver_with_no_t_from_servo_is_killed_at_io_timeouts_line_limit(
        servo_root: Path, tag: str) -> None:
    write_driver(servo_root, "10-hang", hang_driver())
    (servo_root / "config.yaml").write_text("aggregator:\n  io_timeout: 2\n")
    run = await run_adjust(servo_root, "app", tag=tag, stdin=json.dumps(REQUEST))
    assert run.returncode == 1, run.stderr
    assert run.final["reason"] == "timeout"
    assert run.final["failed_drivers"] == ["10-hang"]
    assert ("10-hang: failed: adjust: sent nothing for 1.0 s on stdout or stderr "
            "(limit 1 s from io_timeout in config.yaml); killed") in run.final["message"]
