"""A driver that fails before it answers keeps its cause (#16 point 2): every failure, at
every step (the queries before an adjust, the describes before a measure, --query,
--describe, --version's --info calls), carries the driver's stderr excerpt and, in a
final line, failed_drivers, as a failed adjust does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.measure_support import MEASURE, measure_driver
from tests.support import adjust_env, run_adjust, simple_driver, write_driver

pytestmark = pytest.mark.e2e

#: The typo of the report: env cannot find the interpreter and says so on stderr (127).
TYPO = "#!/usr/bin/env pyhton3"
CPU = {"value": 1, "min": 0, "max": 4}


def assert_cause_kept(final: dict[str, object], driver: str) -> None:
    message = str(final["message"])
    assert final["failed_drivers"] == [driver], final
    assert f"{driver}: failed: " in message and "exited with code 127" in message
    assert f"--- {driver} stderr ---" in message and "pyhton3" in message, message


@pytest.mark.parametrize("args", [("app",), ("--query", "app")])
async def test_a_query_that_fails_before_it_answers(servo_root: Path, tag: str,
                                                    args: tuple[str, ...]) -> None:
    write_driver(servo_root, "01web", simple_driver("web", {"cpu": CPU}))
    write_driver(servo_root, "02redis", "print('never')\n", shebang=TYPO)
    run = await run_adjust(servo_root, *args, tag=tag, stdin=json.dumps(
        {"application": {"components": {"web": {"settings": {"cpu": {"value": 2}}}}}}))
    assert run.returncode == 1
    assert_cause_kept(run.final, "02redis")


@pytest.mark.parametrize("args", [("app",), ("--describe", "app")])
async def test_a_describe_that_fails_before_it_answers(servo_root: Path, tag: str,
                                                       args: tuple[str, ...]) -> None:
    measure_driver(servo_root, "10-load", {}, window=0.1)
    write_driver(servo_root, "20-prom", "print('never')\n", shebang=TYPO, folder="measure.d")
    run = await run_adjust(servo_root, *args, tag=tag, adjust=MEASURE,
                           stdin='{"metrics": ["p99"], "control": {"duration": 1}}')
    assert run.returncode == 1
    assert_cause_kept(run.final, "20-prom")


async def test_version_says_why_with_the_drivers_stderr(servo_root: Path, tag: str) -> None:
    write_driver(servo_root, "01web", simple_driver("web", {"cpu": CPU}))
    write_driver(servo_root, "02redis", "print('never')\n", shebang=TYPO)
    run = await run_adjust(servo_root, "--version", tag=tag,
                           env=adjust_env(tag, OPTUNE_VERBOSE_STDERR="minimal"))
    assert run.returncode == 1
    assert "02redis: failing" in run.lines[0]
    assert "02redis: failed: info: exited with code 127" in run.stderr
    assert "--- 02redis stderr ---" in run.stderr and "pyhton3" in run.stderr, run.stderr
