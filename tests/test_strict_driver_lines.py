"""A driver's lines are read as strict JSON: NaN and the infinities are bad output naming
the driver, like any line that is not JSON; a lone surrogate is valid JSON and passes."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from aggregator.supervision.call import SupervisionPolicy, Supervisor
from tests.fakes import FakeMember, FakeSpawner, fake_spec, open_fake_spawner

pytestmark = pytest.mark.supervision


async def call_with(lines: list[bytes]) -> tuple[Any, list[dict[str, Any]], FakeSpawner]:
    async def driver(p: FakeMember) -> None:
        for line in lines:
            await trio.sleep(0.1)
            await p.write(line + b"\n")

    seen: list[dict[str, Any]] = []
    async with open_fake_spawner() as spawner:
        spawner.script("02fault", driver)
        supervisor = Supervisor(SupervisionPolicy(3.0, 0.5, 1.0), spawner)
        outcome = await supervisor.call(fake_spec("02fault"), seen.append)
    return outcome, seen, spawner


@pytest.mark.parametrize("line", [
    b'{"progress": NaN, "message": "m"}',
    b'{"progress": 10, "stageprogress": Infinity}',
    b'{"status": "ok", "reason": "success", "took": -Infinity}',
    b'{"application": {"components": {"c": {"settings": {"x": {"value": NaN}}}}}}',
])
async def test_nan_or_infinity_in_any_line_is_bad_output(
        autojump_clock: trio.testing.MockClock, line: bytes) -> None:
    outcome, seen, spawner = await call_with([b'{"progress": 5}', line,
                                              b'{"status": "ok", "reason": "success"}'])
    assert outcome.problem is not None
    assert outcome.problem.reason == "bad-output"
    assert "which is not a JSON value" in outcome.problem.detail
    token = next(t for t in ("-Infinity", "Infinity", "NaN") if t.encode() in line)
    assert f"printed {token}" in outcome.problem.detail
    assert seen == [{"progress": 5}]  # nothing of the bad line was passed on
    assert outcome.result is None
    assert spawner.started[0].signals  # killed at once, as for any line that is not JSON


async def test_a_result_with_a_number_that_reads_as_infinity_is_bad_output(
        autojump_clock: trio.testing.MockClock) -> None:
    outcome, _, _ = await call_with([b'{"status": "ok", "reason": "success", "max": 1e400}'])
    assert outcome.problem is not None and outcome.problem.reason == "bad-output"
    assert "reads as infinity" in outcome.problem.detail


async def test_a_later_result_replaces_one_that_had_an_infinite_number(
        autojump_clock: trio.testing.MockClock) -> None:
    outcome, _, _ = await call_with([b'{"max": 1e400}', b'{"status": "ok", "reason": "x"}'])
    assert outcome.problem is None
    assert outcome.result == {"status": "ok", "reason": "x"}


async def test_a_lone_surrogate_escape_is_valid_json_and_passes(
        autojump_clock: trio.testing.MockClock) -> None:
    outcome, seen, _ = await call_with([b'{"progress": 5, "message": "a\\ud800"}',
                                        b'{"status": "ok", "message": "b\\udcff"}'])
    assert outcome.problem is None
    assert seen == [{"progress": 5, "message": "a\ud800"}]
    assert outcome.result == {"status": "ok", "message": "b\udcff"}
