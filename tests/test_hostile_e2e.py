"""Hostile inputs end to end, where only a real ./adjust run shows the promise: servo gets
one clear JSON line, a person gets one readable stderr line, and nothing is changed. (A
driver's hostile version on --version's one line: test_adjust_commands.py, over fakes.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import AdjustRun, run_adjust, simple_driver, write_driver

CPU = {"type": "range", "value": 1, "min": 0, "max": 4}


def assert_refused(run: AdjustRun, reason: str, says: str) -> None:
    assert run.returncode == 1, run.lines
    assert len(run.lines) == 1, run.lines
    assert run.final["status"] == "failed"
    assert run.final["reason"] == reason
    assert says in run.final["message"]
    assert f"servo-agg: error ({reason}): " in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.e2e
async def test_a_request_over_the_cap_is_refused_without_reading_it_all(servo_root: Path,
                                                                        tag: str) -> None:
    write_driver(servo_root, "01db", simple_driver("db", {"cpu": CPU}, log="db.log"))
    request = json.dumps({"application": {"components": {"db": {"settings": {
        "cpu": {"value": 2}}}}}, "control": {"userdata": {"pad": "x" * 50_000_000}}})
    run = await run_adjust(servo_root, "app", tag=tag, stdin=request)
    assert_refused(run, "bad-input", "more than 16,777,216 bytes (16 MiB) on stdin")
    assert not (servo_root / "db.log").exists()
