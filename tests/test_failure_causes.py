"""A driver that fails before it answers keeps its cause (#16 point 2): every failure, at
every step (the queries before an adjust, the describes before a measure, --query,
--describe, --version's --info calls), carries the driver's stderr excerpt and, in a
final line, failed_drivers, as a failed adjust does. What the commands decide, so over
fake drivers on MockClock (tests/README.md); that a real driver's stderr is read is
test_supervision.py's and the fault matrix's."""

from __future__ import annotations

import pytest
from trio.testing import MockClock

from aggregator.adjust.calls import Command
from aggregator.measure.calls import MeasureCommand
from tests.fakes import (
    FakeMember,
    Script,
    adjust_job,
    measure_job,
    measure_script,
    run_command,
    simple_script,
)

pytestmark = pytest.mark.supervision

CPU = {"value": 1, "min": 0, "max": 4}
ADJUST_REQUEST = {"application": {"components": {"web": {"settings": {"cpu": {"value": 2}}}}}}
MEASURE_REQUEST = {"metrics": ["p99"], "control": {"duration": 1}}


async def typo(p: FakeMember) -> int:
    """What `#!/usr/bin/env pyhton3` does whatever it is asked: env cannot find the
    interpreter, says so on stderr and exits 127."""
    await p.complain("/usr/bin/env: 'pyhton3': No such file or directory\n")
    return 127


def assert_cause_kept(final: dict[str, object], driver: str) -> None:
    message = str(final["message"])
    assert final["failed_drivers"] == [driver], final
    assert f"{driver}: failed: " in message and "exited with code 127" in message
    assert f"--- {driver} stderr ---" in message and "pyhton3" in message, message


@pytest.mark.parametrize("command", [Command.ADJUST, Command.QUERY])
async def test_a_query_that_fails_before_it_answers(command: Command,
                                                    autojump_clock: MockClock) -> None:
    drivers: dict[str, Script] = {"01web": simple_script("web", {"cpu": CPU}), "02redis": typo}
    request = ADJUST_REQUEST if command is Command.ADJUST else None
    run = await run_command(adjust_job(command, list(drivers), request), drivers)
    assert run.returncode == 1
    assert_cause_kept(run.final, "02redis")


@pytest.mark.parametrize("command", [MeasureCommand.MEASURE, MeasureCommand.DESCRIBE])
async def test_a_describe_that_fails_before_it_answers(command: MeasureCommand,
                                                       autojump_clock: MockClock) -> None:
    drivers: dict[str, Script] = {"10-load": measure_script({}, window=0.1), "20-prom": typo}
    request = MEASURE_REQUEST if command is MeasureCommand.MEASURE else None
    run = await run_command(measure_job(command, list(drivers), request), drivers)
    assert run.returncode == 1
    assert_cause_kept(run.final, "20-prom")


async def test_version_says_why_with_the_drivers_stderr(autojump_clock: MockClock) -> None:
    drivers: dict[str, Script] = {"01web": simple_script("web", {"cpu": CPU}), "02redis": typo}
    run = await run_command(adjust_job(Command.VERSION, list(drivers), app=""), drivers,
                            stderr_mode="minimal")
    assert run.returncode == 1
    assert "02redis: failing" in run.lines[0]
    assert "02redis: failed: info: exited with code 127" in run.stderr
    assert "--- 02redis stderr ---" in run.stderr and "pyhton3" in run.stderr, run.stderr
