"""A stopped or canceled adjust says what the application holds (#16 point 9): the final
line lists the drivers that completed their adjust, the one interrupted, those never
started, and any that failed or were rolled back before; and a stop never rolls back."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from aggregator.protocol.result import AdjustStanding
from aggregator.protocol.vocabulary import Call
from aggregator.supervision.control import RunControl
from tests.fakes import FakeMember, Script, adjust_over_fakes, timed_script


async def stopped_adjust(drivers: dict[str, Script], stop_at: float,
                         stop: Callable[[RunControl], None],
                         on_failure: str = "continue", parallel_queries: bool = False,
                         ) -> tuple[dict[str, Any], int, list[str]]:
    """The real adjust over fake drivers, `stop` done to its control at `stop_at`: the
    final line, the exit code, and every call made, in order (`name call`)."""
    done = await adjust_over_fakes(
        drivers, {"on_failure": on_failure, "parallel_queries": parallel_queries},
        stop_at=stop_at, stop=stop)
    return done.final, done.code, [f"{p.spec.driver.name} {p.spec.call}"
                                   for p in done.processes]


@pytest.mark.supervision
async def test_a_stopped_adjust_lists_where_each_driver_stands(
        autojump_clock: trio.testing.MockClock) -> None:
    final, code, calls = await stopped_adjust(
        {"10a": timed_script("a"), "15f": timed_script("f", result={
            "status": "rejected", "reason": "out-of-range", "message": "no"}, code=1),
         "20b": timed_script("b"), "30c": timed_script("c", takes=60), "40d": timed_script("d")},
        stop_at=10.0, stop=lambda control: control.terminate(signal.SIGTERM))
    assert code == 128 + signal.SIGTERM
    assert final["status"] == "aborted" and final["reason"] == "terminated"
    lines = final["message"].split("\n")
    assert lines[0] == ("servo-agg received SIGTERM while 30c was running; the driver was "
                        "stopped and no further driver was started")
    assert lines[1:5] == ["applied (adjust completed): 10a, 20b",
                          "interrupted (may be partly applied): 30c",
                          "not started (unchanged): 40d",
                          "failed before the stop: 15f"]
    assert lines[5] == "15f: rejected: adjust: no (exit code 1)"
    assert lines[6].startswith("30c: aborted: adjust: ")
    assert final["failed_drivers"] == ["15f"]
    assert "40d adjust" not in calls


@pytest.mark.supervision
async def test_a_canceled_adjust_lists_the_same_and_does_not_roll_back(
        autojump_clock: trio.testing.MockClock) -> None:
    """on_failure: rollback is for a failure; after servo's stop or cancel no driver runs,
    a rollback neither (the final line says what stays applied)."""
    final, code, calls = await stopped_adjust(
        {"10a": timed_script("a"), "20b": timed_script("b", takes=60), "30c": timed_script("c")},
        stop_at=5.0, stop=lambda control: control.cancel(), on_failure="rollback")
    assert code == 1
    assert final["status"] == "canceled"
    lines = final["message"].split("\n")
    assert lines[1:4] == ["applied (adjust completed): 10a",
                          "interrupted (may be partly applied): 20b",
                          "not started (unchanged): 30c"]
    assert "failed_drivers" not in final
    assert calls == ["10a query", "20b query", "30c query", "10a adjust", "20b adjust"]


@pytest.mark.supervision
@pytest.mark.parametrize("parallel_queries", [False, True])
async def test_a_stop_during_the_queries_says_nothing_was_changed(
        autojump_clock: trio.testing.MockClock, parallel_queries: bool) -> None:
    """The same account as a stop during the adjusts (#16 point 9: also when it was a
    query): nothing changed, the query cut short named, a query failed before kept."""
    final, code, calls = await stopped_adjust(
        {"10a": timed_script("a"), "15f": timed_script("f", query_code=2),
         "20q": timed_script("q", query_takes=60), "30c": timed_script("c", query_takes=120)},
        stop_at=3.0, stop=lambda control: control.cancel(),
        parallel_queries=parallel_queries)
    assert code == 1 and final["status"] == "canceled"
    running = "20q, 30c were" if parallel_queries else "20q was"
    lines = final["message"].split("\n")
    assert lines[0] == (f"canceled by servo while {running} running; no further driver "
                        "was started")
    assert lines[1:6] == ["nothing was changed: the stop came during the drivers' queries, "
                          "before any adjust started",
                          "applied (adjust completed): none",
                          "interrupted (may be partly applied): none",
                          "not started (unchanged): 10a, 20q, 30c",
                          "failed before the stop: 15f"]
    assert lines[6].startswith("15f: failed: query: ")
    assert lines[7].startswith("20q: canceled: query: ")
    assert "--- 15f stderr ---" in lines and "cannot reach the api" in lines
    assert final["failed_drivers"] == ["15f"]
    assert not any(call.endswith(" adjust") for call in calls)
    assert ("30c query" in calls) == parallel_queries


@pytest.mark.supervision
async def test_a_stop_during_a_rollback_names_it_and_does_not_call_it_applied(
        autojump_clock: trio.testing.MockClock) -> None:
    """The rollback servo cut short may have put back part of its settings: neither
    applied nor rolled back; the one not yet rolled back stays applied."""
    final, code, _ = await stopped_adjust(
        {"10a": timed_script("a"), "20b": timed_script("b", rollback_takes=5),
         "30f": timed_script("f", result={"status": "failed", "reason": "x", "message": "no"},
                             code=1)},
        stop_at=4.0, stop=lambda control: control.terminate(signal.SIGTERM),
        on_failure="rollback")
    assert code == 128 + signal.SIGTERM
    lines = final["message"].split("\n")
    assert lines[0].startswith("servo-agg received SIGTERM while 20b was running;")
    assert lines[1:5] == ["applied (adjust completed): 10a",
                          "interrupted (may be partly applied): none",
                          "failed before the stop: 30f",
                          "rollback interrupted (may be partly restored): 20b"]
    assert "rollback of 10a: not attempted (servo-agg was stopped)" in lines
    assert final["failed_drivers"] == ["30f"]


@pytest.mark.supervision
async def test_a_stop_after_a_rollback_failed_still_names_its_driver(
        autojump_clock: trio.testing.MockClock) -> None:
    """A rollback that failed on its own before the stop is a failed driver, as it is
    without a stop (and in the journal's --history)."""
    broke = {"status": "failed", "reason": "y", "message": "cannot undo"}

    def undo_fails(component: str) -> Script:
        adjusted = timed_script(component)

        async def script(p: FakeMember) -> int | None:
            if p.proc.spec.call is not Call.ROLLBACK:
                return await adjusted(p)
            await p.read_request()
            await p.say(broke)
            return 1
        return script

    final, _, calls = await stopped_adjust(
        {"10a": timed_script("a", rollback_takes=60), "20b": undo_fails("b"),
         "30f": timed_script("f", result={"status": "failed", "reason": "x", "message": "no"},
                             code=1)},
        stop_at=10.0, stop=lambda control: control.cancel(), on_failure="rollback")
    assert calls[-2:] == ["20b rollback", "10a rollback"]
    assert final["failed_drivers"] == ["20b", "30f"]
    assert "rollback interrupted (may be partly restored): 10a" in final["message"]


@pytest.mark.unit
def test_the_standing_lines() -> None:
    assert AdjustStanding().lines() == ["applied (adjust completed): none",
                                        "interrupted (may be partly applied): none"]
    assert AdjustStanding(completed=["30c"], interrupted=["40d", "50e"],
                          failed=["20b"], rolled_back=["10a"]).lines() == [
        "applied (adjust completed): 30c",
        "interrupted (may be partly applied): 40d, 50e",  # several at once (a group)
        "failed before the stop: 20b",
        "rolled back before the stop: 10a"]
