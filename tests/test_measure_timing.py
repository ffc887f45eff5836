"""The measure front-end on trio's MockClock, over fake drivers: concurrency, one driver
stuck while another reports, a failure canceling the others, servo's cancel, the overall
limit, and the folding of progress and results. Every time asserted is trio time."""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from signal import SIGKILL, SIGTERM, SIGUSR1
from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from aggregator.measure.calls import MeasureCommand, MeasureJob
from aggregator.measure.commands import run_measure_job
from aggregator.protocol.environment import ServoEnvironment
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.measure import parse_measure_request
from aggregator.protocol.vocabulary import Call
from aggregator.root.config import DriverPolicy, MeasureConfig
from aggregator.supervision.call import SupervisionPolicy, Supervisor
from aggregator.supervision.session import RunStopped, Session, write_stopped
from tests.fakes import (
    FakeMember,
    FakeProcess,
    FakeSpawner,
    RecordingOutput,
    fake_spec,
    open_fake_spawner,
)

pytestmark = pytest.mark.supervision

TRIO_TIME_BOUND = 600.0
Measure = Callable[[FakeMember], Awaitable[int | None]]


def exactly(value: float) -> Any:
    return pytest.approx(value, abs=1e-9)


def driver(metrics: dict[str, Any], measure: Measure) -> Measure:
    """A fake measure driver: `metrics` to --describe, `measure` to the measure call."""
    async def script(p: FakeMember) -> int | None:
        if p.proc.spec.call is Call.DESCRIBE:
            await p.say({"status": "ok", "metrics": metrics})
            return 0
        return await measure(p)
    return script


def returns(seconds: float, metrics: dict[str, Any], *, every: float = 0.0,
            annotations: dict[str, Any] | None = None) -> Measure:
    """Measures for `seconds` (progress every `every` s, if set), then returns metrics;
    on SIGUSR1 it says canceled and exits 3, as real drivers do."""
    async def measure(p: FakeMember) -> int:
        json.loads(await p.read_request())
        p.catch(SIGUSR1)
        started = trio.current_time()
        canceled = False
        async with trio.open_nursery() as nursery:
            async def watch_for_cancel() -> None:
                nonlocal canceled
                await p.next_signal()
                canceled = True
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_for_cancel)
            with trio.move_on_after(seconds):
                while every:
                    await trio.sleep(every)
                    done = (trio.current_time() - started) * 100 / seconds
                    await p.say({"progress": min(99, int(done)), "message": "measuring"})
                await trio.sleep_forever()
            nursery.cancel_scope.cancel()
        if canceled:
            await p.say({"status": "canceled", "reason": "canceled", "message": "stopped"})
            return 3
        result: dict[str, Any] = {"status": "ok", "metrics": metrics}
        if annotations:
            result["annotations"] = annotations
        await p.say(result)
        return 0
    return measure


async def hangs(p: FakeMember) -> None:
    await p.read_request()
    await trio.sleep_forever()


async def fails_at(p: FakeMember, when: float = 1.0) -> int:
    await p.read_request()
    await trio.sleep(when)
    await p.say({"status": "failed", "reason": "target-down", "message": "no target"})
    return 1


async def run_measure(spawner: FakeSpawner, drivers: dict[str, Measure],
                      request: dict[str, Any], *, io_timeout: float | None = 10.0,
                      kill_grace: float = 0.5, config: MeasureConfig | None = None,
                      actions: tuple[tuple[float, Callable[[Session], None]], ...] = (),
                      heartbeat: bool = True) -> tuple[int, RecordingOutput]:
    for name, script in drivers.items():
        spawner.script(name, script)
    output = RecordingOutput()
    session = Session(Supervisor(SupervisionPolicy(io_timeout, kill_grace, 2.0), spawner),
                      output, ServoEnvironment(io_timeout, "all"))
    job = MeasureJob(MeasureCommand.MEASURE, "app", config or MeasureConfig(cancel_grace=2.0),
                     tuple(fake_spec(name, Call.MEASURE).driver for name in drivers),
                     parse_measure_request(json.dumps(request).encode()))
    code = -1

    async def at(when: float, action: Callable[[Session], None]) -> None:
        await trio.sleep_until(when)
        action(session)

    with trio.fail_after(TRIO_TIME_BOUND):
        async with trio.open_nursery() as nursery:
            if session.liveness is not None and heartbeat:
                nursery.start_soon(session.liveness.run)
            for when, action in actions:
                nursery.start_soon(at, when, action)
            try:
                code = await run_measure_job(job, session)
            except RunStopped as stop:  # what the Run does with these
                code = write_stopped(session, stop)
            except AggregatorError as err:
                output.error(err)
                code = 1
            nursery.cancel_scope.cancel()
    return code, output


def measured(spawner: FakeSpawner, name: str) -> FakeProcess:
    """The process of `name`'s measure call (its --describe was another)."""
    return next(p for p in spawner.started
                if p.spec.driver.name == name and p.spec.call is Call.MEASURE)


def final(output: RecordingOutput) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(output.lines[-1][1])
    return result


def progress(output: RecordingOutput) -> list[tuple[float, int, str]]:
    lines = [(t, json.loads(text)) for t, text in output.lines]
    return [(t, line["progress"], line["message"]) for t, line in lines if "progress" in line]


REQUEST = {"metrics": ["throughput", "latency"], "control": {"duration": 5}}


async def test_drivers_run_at_once_the_run_lasts_the_longest_window(
        autojump_clock: MockClock) -> None:
    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10load": driver({}, returns(5.0, {}, annotations={"load": "ab -c 10"})),
            "20prom": driver({"throughput": {"unit": "rpm"}, "latency": {"unit": "ms"}},
                             returns(3.0, {"throughput": {"value": 12.5},
                                           "latency": {"values": [{"data": [[1, 2]]}]}})),
        }, REQUEST)
    assert code == 0
    assert output.lines[-1][0] == exactly(5.0)  # the longest window, not the sum (8 s)
    assert final(output) == {"status": "ok",
                             "metrics": {"throughput": {"value": 12.5},
                                         "latency": {"values": [{"data": [[1, 2]]}]}},
                             "annotations": {"load": "ab -c 10"}}
    requests = {p.spec.driver.name: json.loads(p.request) for p in spawner.started
                if p.spec.call is Call.MEASURE}
    assert requests["10load"]["metrics"] == []  # the key is always there
    assert requests["20prom"]["metrics"] == ["throughput", "latency"]


async def test_progress_is_the_slowest_driver_never_backwards(
        autojump_clock: MockClock) -> None:
    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10fast": driver({}, returns(2.0, {}, every=0.5)),
            "20slow": driver({"throughput": {}}, returns(4.0, {"throughput": {"value": 1}},
                                                         every=0.5)),
        }, REQUEST, config=MeasureConfig(cancel_grace=2.0, progress_interval=0.0))
    assert code == 0  # every line relayed: the fold itself is what is tested here
    shown = progress(output)
    percents = [p for _, p, _ in shown]
    assert percents == sorted(percents) and all(0 <= p <= 100 for p in percents)
    # While both run, the slower one sets the pace (10fast is at 50 % at 1 s, 75 % at
    # 1.5 s); once 10fast is done (at 2 s) it counts 100, and only 20slow is named.
    # The state once both reported at an instant (which reports first there is trio's
    # choice): the slower one's.
    newest = {t: (p, m) for t, p, m in shown if 1.0 <= t < 2.0}
    assert newest == {1.0: (25, "20slow: measuring"), 1.5: (37, "20slow: measuring")}
    after = [m for t, _, m in shown if t > 2.0]
    assert after and all(m.startswith("20slow") for m in after)
    assert shown[-1][1] == 100


async def test_a_stuck_driver_is_killed_alone_at_t_minus_1_while_the_other_reports(
        autojump_clock: MockClock) -> None:
    """The aggregate stream is busy (the other driver reports every second), so servo
    cannot see that one driver is stuck: the aggregator must, per driver."""
    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10stuck": driver({}, hangs),
            "20prom": driver({"throughput": {}}, returns(30.0, {"throughput": {"value": 1}},
                                                         every=1.0)),
        }, REQUEST, config=MeasureConfig(on_failure="continue", cancel_grace=2.0))
        stuck = measured(spawner, "10stuck")
    assert stuck.signals[0] == (exactly(9.0), "group", SIGTERM)  # T-1 of its own silence
    assert code == 1
    result = final(output)
    assert result["failed_drivers"] == ["10stuck"] and result["reason"] == "timeout"
    assert "canceled_drivers" not in result  # on_failure: continue let 20prom finish
    assert output.lines[-1][0] == exactly(30.0)


async def test_a_failure_cancels_the_others_at_once(autojump_clock: MockClock) -> None:
    async def ignores_usr1(p: FakeMember) -> None:
        p.ignore(SIGUSR1)  # a load generator deaf to the cancel: the cascade ends it
        await p.read_request()
        while True:
            await trio.sleep(1.0)
            await p.say({"progress": 1})

    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10fails": driver({}, fails_at),
            "20load": driver({}, ignores_usr1),
            "30prom": driver({"throughput": {}}, returns(60.0, {"throughput": {"value": 1}})),
        }, REQUEST)
        load = measured(spawner, "20load")
        prom = measured(spawner, "30prom")
    assert load.signals[:3] == [(exactly(1.0), "leader", SIGUSR1),
                                (exactly(3.0), "group", SIGTERM),  # after the 2 s grace
                                (exactly(3.0), "group", SIGKILL)]  # what is left of it
    assert prom.signals[0] == (exactly(1.0), "leader", SIGUSR1)  # it stopped its own way
    assert code == 1
    result = final(output)
    assert result["status"] == "failed" and result["failed_drivers"] == ["10fails"]
    assert result["canceled_drivers"] == ["20load", "30prom"]
    assert "canceled because 10fails failed: 20load, 30prom" in result["message"]
    assert output.lines[-1][0] < 4.0  # not 60 s: the others did not run out their window


async def test_servo_cancel_reaches_every_driver_once_and_the_run_is_canceled(
        autojump_clock: MockClock) -> None:
    def cancel(session: Session) -> None:
        session.control.cancel()

    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10load": driver({}, returns(60.0, {})),
            "20prom": driver({"throughput": {}}, returns(60.0, {"throughput": {"value": 1}})),
        }, REQUEST, actions=((2.0, cancel), (2.5, cancel), (3.0, cancel)))  # repeated
        measured = [p for p in spawner.started if p.spec.call is Call.MEASURE]
    for proc in measured:
        assert [s for s in proc.signals if s[2] == SIGUSR1] == [(exactly(2.0), "leader",
                                                                 SIGUSR1)]
    result = final(output)
    assert result["status"] == "canceled"
    # servo canceled them all: the first to stop is not a failure that canceled the rest
    assert "because" not in result["message"], result["message"]
    assert "canceled_drivers" not in result
    for name in ("10load", "20prom"):
        assert f"{name}: canceled" in result["message"], result["message"]
    assert code == 1


async def test_a_canceled_measure_keeps_each_earlier_failure_with_its_stderr(
        autojump_clock: MockClock) -> None:
    """As a stopped adjust does: the final line of a canceled measure still names the
    driver that had failed on its own, in failed_drivers, with its stderr excerpt; the
    drivers the cancel cut short are not called failed."""
    async def cannot_reach(p: FakeMember) -> int:
        await p.read_request()
        await trio.sleep(0.5)
        await p.complain("cannot reach prometheus at :9090\n")
        return 3

    def cancel(session: Session) -> None:
        session.control.cancel()

    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10bad": driver({"latency": {}}, cannot_reach),
            "20load": driver({"throughput": {}}, returns(60.0, {"throughput": {"value": 1}})),
        }, REQUEST, actions=((1.5, cancel),),
            config=MeasureConfig(on_failure="continue", cancel_grace=2.0))
    result = final(output)
    assert result["status"] == "canceled" and code == 1
    assert result["failed_drivers"] == ["10bad"]
    lines = result["message"].split("\n")
    assert "10bad: failed: measure: exited with code 3" in lines
    assert any(line.startswith("20load: canceled: ") for line in lines)
    assert "--- 10bad stderr ---" in lines
    assert "cannot reach prometheus at :9090" in result["message"]


async def test_a_sigterm_stops_every_driver_and_blames_none_of_them_for_the_others(
        autojump_clock: MockClock) -> None:
    def terminate(session: Session) -> None:
        session.control.terminate(SIGTERM)

    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10load": driver({}, returns(60.0, {})),
            "20prom": driver({"throughput": {}}, returns(60.0, {"throughput": {"value": 1}})),
        }, REQUEST, actions=((2.0, terminate),))
        measured_calls = [p for p in spawner.started if p.spec.call is Call.MEASURE]
    for proc in measured_calls:
        assert proc.signals[0] == (exactly(2.0), "group", SIGTERM)
        assert SIGUSR1 not in [s[2] for s in proc.signals]  # no sibling cancel after it
    result = final(output)
    assert result["status"] == "aborted"
    assert "failed:" not in result["message"], result["message"]  # not "canceled because"
    assert "while 10load, 20prom were running; the drivers were stopped" in result["message"]
    assert code == 128 + SIGTERM


async def test_the_overall_limit_kills_a_driver_past_its_window(
        autojump_clock: MockClock) -> None:
    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10prom": driver({"throughput": {}}, hangs),
        }, {"metrics": ["throughput"], "control": {"duration": 3, "warmup": 1}},
            io_timeout=None, config=MeasureConfig(window_grace=2.0))
        prom = measured(spawner, "10prom")
    # window 4 s + grace 2 s: the cascade starts at 6 s, not before
    assert prom.signals[:2] == [(exactly(6.0), "group", SIGTERM),
                                (exactly(6.0), "group", SIGKILL)]
    result = final(output)
    assert result["reason"] == "timeout"
    assert ("10prom: failed: measure: ran 6.0 s, past its 4 s measurement window and the "
            "2 s window_grace; killed") in result["message"]
    assert code == 1


async def test_window_grace_kills_no_sooner_than_the_window_plus_the_grace_whatever_the_kill_grace(
        autojump_clock: MockClock) -> None:
    """Issue 14: with window_grace 3 and kill_grace 5, a driver measuring exactly its 1 s
    window was killed at 0.3 s (the kill grace came off the limit)."""
    async def slow_describe(metrics: dict[str, Any], measure: Measure) -> Measure:
        async def script(p: FakeMember) -> int | None:
            if p.proc.spec.call is Call.DESCRIBE:
                await trio.sleep(2.0)  # the window counts from the driver's own start
            return await driver(metrics, measure)(p)
        return script

    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10exact": await slow_describe({"x": {}}, returns(1.0, {"x": {"value": 1}})),
            "20hangs": await slow_describe({"y": {}}, hangs),
        }, {"metrics": ["x", "y"], "control": {"duration": 1}}, io_timeout=None,
            kill_grace=5.0, config=MeasureConfig(window_grace=3.0, on_failure="continue"))
        exact, stuck = measured(spawner, "10exact"), measured(spawner, "20hangs")
    assert [s for s in exact.signals if s[2] != SIGKILL] == []  # (what its group left
    # after its exit gets SIGKILL): it measured its window and answered, untouched
    assert stuck.signals[0] == (exactly(2.0 + 1.0 + 3.0), "group", SIGTERM)
    result = final(output)
    assert result["failed_drivers"] == ["20hangs"]
    assert ("20hangs: failed: measure: ran 4.0 s, past its 1 s measurement window and the "
            "3 s window_grace; killed") in result["message"]
    assert code == 1


async def test_window_grace_counts_from_each_drivers_own_window_after_its_override(
        autojump_clock: MockClock) -> None:
    """Issue 14: a driver whose override gives it `duration: 3` was killed at 1.7 s as
    past the top-level 1 s window."""
    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10long": driver({"x": {}}, returns(3.5, {"x": {"value": 1}})),
            "20short": driver({"y": {}}, hangs),
            "30long": driver({}, hangs),
        }, {"metrics": ["x", "y"],
            "control": {"duration": 1,
                        "userdata": {"10long": {"control": {"duration": 3}},
                                     "30long": {"control": {"duration": 3}}}}},
            io_timeout=None, config=MeasureConfig(window_grace=1.0, on_failure="continue"))
        long_ok, short, long_stuck = (measured(spawner, name)
                                      for name in ("10long", "20short", "30long"))
    # 3.5 s is within its own 3 s window plus the 1 s grace: not killed
    assert [s for s in long_ok.signals if s[2] != SIGKILL] == []
    assert short.signals[0] == (exactly(2.0), "group", SIGTERM)  # 1 s window + 1 s
    assert long_stuck.signals[0] == (exactly(4.0), "group", SIGTERM)  # 3 s window + 1 s
    result = final(output)
    assert result["failed_drivers"] == ["20short", "30long"]
    message = result["message"]
    assert "20short: failed: measure: ran 2.0 s, past its 1 s measurement window" in message
    assert "30long: failed: measure: ran 4.0 s, past its 3 s measurement window" in message
    assert code == 1


async def test_no_overall_limit_by_default(autojump_clock: MockClock) -> None:
    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10prom": driver({"throughput": {}}, returns(100.0, {"throughput": {"value": 1}},
                                                         every=5.0)),
        }, {"metrics": ["throughput"], "control": {"duration": 3}})
    assert code == 0 and output.lines[-1][0] == exactly(100.0)


@pytest.mark.parametrize(("drivers", "reason", "says"), [
    ({"10a": driver({"x": {}}, returns(1.0, {})), "20b": driver({}, returns(1.0, {}))},
     "no-metrics", "no driver returned any"),
    ({"10a": driver({"x": {}}, returns(1.0, {"x": {"value": 1}})),
      "20b": driver({}, returns(1.0, {"x": {"value": 2}}))},
     "duplicate-metric", "metric x is returned by both 10a and 20b"),
])
async def test_results_that_cannot_be_one_result_fail(
        autojump_clock: MockClock, drivers: dict[str, Measure], reason: str,
        says: str) -> None:
    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, drivers, {"metrics": ["x"]})
    assert code == 1
    result = final(output)
    assert (result["status"], result["reason"]) == ("failed", reason)
    assert says in result["message"]


async def test_a_metric_two_drivers_describe_fails_before_any_measure(
        autojump_clock: MockClock) -> None:
    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10a": driver({"x": {}}, hangs), "20b": driver({"x": {}}, hangs)},
            {"metrics": ["x"]})
        measured = [p for p in spawner.started if p.spec.call is Call.MEASURE]
    assert code == 1 and measured == []
    result = final(output)
    assert result["reason"] == "duplicate-metric"
    assert "metric x is described by both 10a and 20b" in result["message"]


async def test_slow_descriptions_do_not_leave_servo_waiting_through_the_measure(
        autojump_clock: MockClock) -> None:
    """8.5 s of --describe, then silent measure drivers: servo (T=10) must hear a line
    before the measurement could outlast its patience (the keep-alive's job: the
    heartbeat is off here, to show it alone)."""
    async def slow_describe(p: FakeMember) -> int | None:
        if p.proc.spec.call is Call.DESCRIBE:
            await trio.sleep(8.5)
            await p.say({"status": "ok", "metrics": {"x": {}}})
            return 0
        await p.read_request()
        await trio.sleep(5.0)
        await p.say({"status": "ok", "metrics": {"x": {"value": 1}}})
        return 0

    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {"10x": slow_describe}, {"metrics": ["x"]},
                                         heartbeat=False)
    assert code == 0
    assert max(output.gaps()) < 10.0, output.lines


async def test_a_progress_flood_of_drivers_at_once_reaches_servo_once_per_interval(
        autojump_clock: MockClock) -> None:
    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10load": driver({}, returns(3.0, {}, every=0.001)),
            "20prom": driver({"throughput": {}}, returns(2.0, {"throughput": {"value": 1}},
                                                         every=0.002)),
        }, REQUEST)
    assert code == 0
    assert "metrics" in final(output)  # the final line is the last line
    shown = progress(output)
    assert len(shown) == len(output.lines) - 1  # every other line is progress
    assert len(shown) < 20  # 3 s of floods (4,000 lines): ~12 intervals
    times = sorted({t for t, _, _ in shown})
    assert all(b - a >= 0.25 - 1e-9 for a, b in itertools.pairwise(times[:-1]))
    messages = [m for _, _, m in shown]
    assert messages[-1] == "10load: done"  # (20prom's done names the slowest: 10load)
    assert shown[-1][1] == 100


# -- what was asked for and did not come --------------------------------------------------

ASKED_IN_VAIN = {"metrics": ["x", "y", "perf"],
                 "control": {"duration": 1,
                             "userdata": {"99gone": {"control": {"duration": 5}},
                                          "30off": {"control": {"duration": 5}}}}}


async def test_every_requested_metric_that_did_not_come_is_in_the_ok_lines_annotations(
        autojump_clock: MockClock) -> None:
    """servo and the optimizer see only the final line: a metric described and not
    returned, one no driver describes and an override that took effect nowhere are in
    it, as servo-agg's own annotation (and on stderr)."""
    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10a": driver({"x": {}, "y": {}}, returns(1.0, {"x": {"value": 1}})),
            "20load": driver({}, returns(1.0, {}, annotations={"load": "ab"})),
        }, ASKED_IN_VAIN,
            config=MeasureConfig(cancel_grace=2.0,
                                 drivers={"30off": DriverPolicy(enabled=False)}))
    assert code == 0
    notices = [
        "no driver describes perf; asked for anyway (the optimizer may derive them)",
        "control.userdata.99gone.control took effect nowhere: no measure driver is called "
        "99gone",
        "control.userdata.30off.control took effect nowhere: 30off is disabled "
        "(measure.drivers.30off.enabled)",
        "10a did not return y, which it describes and was asked for",
    ]
    assert final(output) == {"status": "ok", "metrics": {"x": {"value": 1}},
                             "annotations": {"load": "ab", "servo-agg": notices}}
    assert output.notes.splitlines() == [f"servo-agg: {notice}" for notice in notices]


async def test_missing_metrics_fail_fails_the_driver_naming_it_and_the_metric(
        autojump_clock: MockClock) -> None:
    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10a": driver({"x": {}, "y": {}}, returns(1.0, {"x": {"value": 1}})),
            "20load": driver({}, returns(60.0, {})),
        }, {"metrics": ["x", "y"]},
            config=MeasureConfig(cancel_grace=2.0, missing_metrics="fail"))
        load = measured(spawner, "20load")
    assert code == 1
    result = final(output)
    assert (result["status"], result["reason"]) == ("failed", "missing-metrics")
    assert result["failed_drivers"] == ["10a"] and result["canceled_drivers"] == ["20load"]
    assert result["message"].startswith(
        "10a: failed: measure: 10a did not return y, which it describes and was asked for "
        "(measure.missing_metrics: fail)")
    assert load.signals[0] == (exactly(1.0), "leader", SIGUSR1)  # a failure like any


def describes_slowly(metrics: dict[str, Any], measure: Measure, reports: int = 6,
                     every: float = 0.5) -> Measure:
    """--describe: a progress line (its own 40 %) every `every` s, then `metrics`."""
    async def script(p: FakeMember) -> int | None:
        if p.proc.spec.call is Call.DESCRIBE:
            for i in range(reports):
                await p.say({"progress": 40, "message": f"asking prometheus {i}"})
                await trio.sleep(every)
            await p.say({"status": "ok", "metrics": metrics})
            return 0
        return await measure(p)
    return script


async def test_progress_a_describe_prints_before_a_measure_reaches_servo_within_an_interval(
        autojump_clock: MockClock) -> None:
    """#14.1: the optimizer can cancel during a long survey too: each report of a
    describing driver gets servo a line within one interval, at 0 %, naming it."""
    async with open_fake_spawner() as spawner:
        code, output = await run_measure(spawner, {
            "10prom": describes_slowly({"throughput": {}},
                                       returns(1.0, {"throughput": {"value": 1}})),
            "20load": driver({}, returns(1.0, {})),
        }, REQUEST)
    assert code == 0
    lines = progress(output)
    for i in range(6):
        said = [(t, p) for t, p, message in lines if message == f"10prom: asking prometheus {i}"]
        assert said and said[0][1] == 0 and 0.5 * i <= said[0][0] <= 0.5 * i + 0.25, said


async def test_describe_answers_one_line_whatever_progress_the_drivers_print(
        autojump_clock: MockClock) -> None:
    async with open_fake_spawner() as spawner:
        spawner.script("10prom", describes_slowly({"throughput": {}}, hangs))
        output = RecordingOutput()
        session = Session(Supervisor(SupervisionPolicy(10.0, 0.5, 2.0), spawner),
                          output, ServoEnvironment(10.0, "all"))
        job = MeasureJob(MeasureCommand.DESCRIBE, "app", MeasureConfig(),
                         (fake_spec("10prom", Call.DESCRIBE).driver,))
        with trio.fail_after(TRIO_TIME_BOUND):
            assert await run_measure_job(job, session) == 0
    [(_, line)] = output.lines
    assert json.loads(line) == {"status": "ok", "metrics": {"throughput": {}}}
