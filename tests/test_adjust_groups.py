"""Adjust groups under supervision (#18), on trio's MockClock over fake drivers: groups run
in order, the drivers of one group together, each supervised alone; the on_failure
policies, the rollback in reverse, progress, servo's cancel and terminate."""

from __future__ import annotations

import itertools
import json
import signal
from collections.abc import Callable

import pytest
import trio
import trio.testing

from aggregator.protocol.vocabulary import Call
from aggregator.supervision.control import RunControl
from tests.fakes import adjust_over_fakes, timed_script

pytestmark = pytest.mark.supervision

OK = {"status": "ok", "reason": "success"}
FAILED = {"status": "failed", "reason": "broken", "message": "it broke"}


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


async def test_groups_run_in_order_and_the_drivers_of_a_group_together(
        autojump_clock: trio.testing.MockClock) -> None:
    done = await adjust_over_fakes(
        {"10a": timed_script("a"), "10b": timed_script("b", takes=2), "20c": timed_script("c"),
         "30d": timed_script("d"), "30e": timed_script("e")}, {"groups": "prefix"})
    assert done.final == OK and done.code == 0
    a, b, c, d, e = (done.span(n) for n in ("10a", "10b", "20c", "30d", "30e"))
    assert overlap(a, b) and overlap(d, e)  # together inside a group
    assert c[0] >= max(a[1], b[1])  # the next group waits for the slowest of the last
    assert min(d[0], e[0]) >= c[1]
    assert not any(overlap(x, y) for x in (a, b) for y in (c, d, e))
    assert e[1] - a[0] == pytest.approx(4.0, abs=0.1)  # 2 + 1 + 1, not 1+2+1+1+1


async def test_without_groups_every_driver_runs_alone_in_file_name_order(
        autojump_clock: trio.testing.MockClock) -> None:
    done = await adjust_over_fakes(
        {"10a": timed_script("a"), "10b": timed_script("b"), "20c": timed_script("c")}, {})
    spans = [done.span(n) for n in ("10a", "10b", "20c")]
    assert all(first[1] <= second[0] for first, second in itertools.pairwise(spans))


#: When the failing driver of group 10 ends, beside 10b (1 s) and 10c (2 s).
WHEN = {"early": 0.2, "middle": 1.5, "end": 3.0}


@pytest.mark.parametrize("when", list(WHEN))
async def test_continue_lets_the_group_finish_and_later_groups_run(
        autojump_clock: trio.testing.MockClock, when: str) -> None:
    done = await adjust_over_fakes(
        {"05z": timed_script("z"),
         "10a": timed_script("a", takes=WHEN[when], result=FAILED, code=1),
         "10b": timed_script("b"), "10c": timed_script("c", takes=2), "20d": timed_script("d")},
        {"groups": "prefix", "on_failure": "continue"})
    assert done.code == 1 and done.final["failed_drivers"] == ["10a"]
    assert done.final["reason"] == "broken"
    adjusts = done.calls(Call.ADJUST)
    assert set(adjusts) == {"05z", "10a", "10b", "10c", "20d"}
    assert all(adjusts[n].exit_code == 0 for n in ("10b", "10c", "20d"))  # none was killed
    assert done.span("20d")[0] >= max(done.span(n)[1] for n in ("10a", "10b", "10c"))


@pytest.mark.parametrize("when", list(WHEN))
async def test_stop_lets_the_group_finish_and_starts_no_later_group(
        autojump_clock: trio.testing.MockClock, when: str) -> None:
    done = await adjust_over_fakes(
        {"10a": timed_script("a", takes=WHEN[when], result=FAILED, code=1),
         "10b": timed_script("b"), "10c": timed_script("c", takes=2), "20d": timed_script("d")},
        {"groups": "prefix", "on_failure": "stop"})
    assert done.code == 1 and done.final["failed_drivers"] == ["10a"]
    adjusts = done.calls(Call.ADJUST)
    assert set(adjusts) == {"10a", "10b", "10c"}
    assert not any(adjusts[n].sent(signal.SIGTERM) or adjusts[n].sent(signal.SIGUSR1)
                   for n in ("10b", "10c"))  # a rollout is never killed half-way
    assert adjusts["10b"].exit_code == adjusts["10c"].exit_code == 0
    assert "not started (on_failure: stop): 20d" in done.final["message"].split("\n")


@pytest.mark.parametrize("when", list(WHEN))
async def test_rollback_restores_groups_in_reverse_and_a_groups_drivers_together(
        autojump_clock: trio.testing.MockClock, when: str) -> None:
    done = await adjust_over_fakes(
        {"05y": timed_script("y"), "05z": timed_script("z"),
         "10a": timed_script("a", takes=WHEN[when], result=FAILED, code=1),
         "10b": timed_script("b"), "10c": timed_script("c", takes=2), "20d": timed_script("d")},
        {"groups": "prefix", "on_failure": "rollback"})
    assert done.code == 1 and done.final["reason"] == "broken"
    rollbacks = done.calls(Call.ROLLBACK)
    assert set(rollbacks) == {"05y", "05z", "10b", "10c"}  # what completed, not 10a
    assert "20d" not in done.calls(Call.ADJUST)
    y, z, b, c = (done.span(n, Call.ROLLBACK) for n in ("05y", "05z", "10b", "10c"))
    assert overlap(b, c) and overlap(y, z)  # a group's drivers together
    assert min(y[0], z[0]) >= max(b[1], c[1])  # the newest group first
    assert b[0] >= max(done.span(n)[1] for n in ("10a", "10b", "10c"))  # after the group
    lines = done.final["message"].split("\n")
    assert [line.split(":")[0] for line in lines if line.startswith("rollback of")] == [
        "rollback of 10c", "rollback of 10b", "rollback of 05z", "rollback of 05y"]


async def test_a_stuck_driver_is_killed_alone_while_its_group_goes_on(
        autojump_clock: trio.testing.MockClock) -> None:
    done = await adjust_over_fakes(
        {"10a": timed_script("a", takes=4, reports=8), "10b": timed_script("b", silent=True),
         "20c": timed_script("c")}, {"groups": "prefix"}, io_timeout=3.0)
    assert done.final["failed_drivers"] == ["10b"] and done.final["reason"] == "timeout"
    adjusts = done.calls(Call.ADJUST)
    assert adjusts["10b"].sent(signal.SIGTERM)[0][0] == pytest.approx(2.0, abs=0.1)  # T-1
    assert adjusts["10a"].exit_code == 0  # it finished its 4 s, untouched
    assert not (adjusts["10a"].sent(signal.SIGTERM) or adjusts["10a"].sent(signal.SIGUSR1))
    assert adjusts["20c"].exit_code == 0


async def test_progress_adds_up_the_running_shares_and_names_the_slowest(
        autojump_clock: trio.testing.MockClock) -> None:
    done = await adjust_over_fakes(
        {"10a": timed_script("a", takes=1, reports=4), "10b": timed_script("b", takes=4, reports=4),
         "20c": timed_script("c", takes=1, reports=2)},
        {"groups": "prefix", "progress_interval": 0, "drivers": {"10b": {"weight": 2}}})
    values = [p for p, _ in done.progress()]
    assert values == sorted(values) and values[-1] == 100  # never down
    by_text = dict((message, p) for p, message in done.progress())
    # 10a done (1 of 4 parts) while 10b, weight 2, reports 50 %: (1*100 + 2*50)/4
    assert by_text["10b: step 2"] == 50
    # while both run, a line names the one furthest behind
    assert any(message.startswith("10b: ") for p, message in done.progress() if p < 25)
    assert by_text["20c: step 0"] == 75


@pytest.mark.parametrize("how", ["cancel", "terminate"])
async def test_servo_stops_every_running_driver_of_the_group(
        autojump_clock: trio.testing.MockClock, how: str) -> None:
    stop: Callable[[RunControl], None] = (
        (lambda c: c.cancel()) if how == "cancel" else (lambda c: c.terminate(signal.SIGTERM)))
    done = await adjust_over_fakes(
        {"05z": timed_script("z"), "10a": timed_script("a", takes=60),
         "10b": timed_script("b", takes=60), "20c": timed_script("c")},
        {"groups": "prefix"}, stop_at=5.0, stop=stop)
    adjusts = done.calls(Call.ADJUST)
    sig = signal.SIGUSR1 if how == "cancel" else signal.SIGTERM
    for name in ("10a", "10b"):
        assert adjusts[name].sent(sig)[0][0] == pytest.approx(5.0, abs=0.01)
    assert "20c" not in adjusts
    lines = done.final["message"].split("\n")
    assert lines[1:4] == ["applied (adjust completed): 05z",
                          "interrupted (may be partly applied): 10a, 10b",
                          "not started (unchanged): 20c"]
    assert done.code == (1 if how == "cancel" else 128 + signal.SIGTERM)


@pytest.mark.parametrize(("how", "ended"), [("cancel", "canceled"), ("terminate", "stopped")])
async def test_a_driver_servo_stopped_is_not_called_failed_in_the_progress_stream(
        autojump_clock: trio.testing.MockClock, how: str, ended: str) -> None:
    """As in a measure: `failed` is for a driver's own failure; the one a stop cut short
    is `canceled` (servo's cancel) or `stopped` (a terminate)."""
    stop: Callable[[RunControl], None] = (
        (lambda c: c.cancel()) if how == "cancel" else (lambda c: c.terminate(signal.SIGTERM)))
    done = await adjust_over_fakes(
        {"05z": timed_script("z"), "10a": timed_script("a", takes=60),
         "10b": timed_script("b", takes=60)},
        {"groups": "prefix", "progress_interval": 0}, stop_at=5.0, stop=stop)
    messages = [message for _, message in done.progress()]
    assert messages[-1] in (f"10a: {ended}", f"10b: {ended}")  # the last of them to end
    assert not any(message.endswith(": failed") for message in messages)


async def test_a_driver_that_ends_while_others_of_its_group_run_names_the_slowest_of_them(
        autojump_clock: trio.testing.MockClock) -> None:
    """#18.4: the message names the slowest running driver, also when another one ends."""
    done = await adjust_over_fakes(
        {"10a": timed_script("a", takes=0.5, result=FAILED, code=1),
         "10b": timed_script("b", takes=4, reports=2)},
        {"groups": "prefix", "progress_interval": 0})
    after = [(t, json.loads(line)) for t, line in done.output.lines if t >= 0.5]
    assert [(t, m["progress"], m["message"]) for t, m in after if "progress" in m] == [
        (0.5, 50, "10b: step 0"),  # 10a ended (half the whole): 10b runs on at its step 0
        (2.0, 75, "10b: step 1"), (4.0, 100, "10b: done")]
    assert done.final["failed_drivers"] == ["10a"]


async def test_verbose_says_which_drivers_ran_together_and_what_it_saved(
        autojump_clock: trio.testing.MockClock) -> None:
    trace: list[tuple[str, str]] = []
    await adjust_over_fakes({"10a": timed_script("a", takes=1), "10b": timed_script("b", takes=2),
                             "20c": timed_script("c")}, {"groups": "prefix"}, trace=trace)
    said = [text for who, text in trace if who == "group 10"]
    assert said[0] == "10a, 10b start at once"
    assert said[1].startswith("all 2 ended 2.0")
    assert "one after another they would have taken 3.0" in said[1]
    assert not [text for who, text in trace if who.startswith("group 20")]  # alone: no word
