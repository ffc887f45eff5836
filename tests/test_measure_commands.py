"""What the measure front-end's commands tell servo for what their drivers say, run as
./measure runs them over fake drivers on trio's MockClock (the timing rules of a
measurement are test_measure_timing.py's). How ./measure gets there is
test_measure_e2e.py's."""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest
from trio.testing import MockClock

from aggregator.measure.calls import MeasureCommand
from aggregator.protocol.vocabulary import Call
from aggregator.root.config import MeasureConfig
from tests.fakes import FakeMember, FakeRun, Script, measure_job, measure_script, run_command

pytestmark = pytest.mark.supervision


def two_drivers(window: float = 0.3) -> dict[str, Script]:
    """test_measure_e2e's two_drivers, as fakes: a load generator and a metrics reader."""
    return {"10load": measure_script({}, window=window, annotations={"load": "ab -c 4"}),
            "20prom": measure_script({"throughput": {"unit": "rpm"}, "p99": {"unit": "ms"}},
                                     window=window, annotations={"load": "prom"})}


def measured(run: FakeRun, name: str) -> list[dict[str, Any]]:
    """The measure requests driver `name` received."""
    return [json.loads(p.request) for p in run.calls(name) if p.spec.call is Call.MEASURE]


async def measure(drivers: dict[str, Script], request: dict[str, Any], *,
                  command: MeasureCommand = MeasureCommand.MEASURE, as_json: bool = False,
                  config: MeasureConfig | None = None,
                  signals: tuple[tuple[float, int], ...] = ()) -> FakeRun:
    job = measure_job(command, list(drivers), request, config=config, as_json=as_json)
    return await run_command(job, drivers, signals=signals)


async def test_metrics_as_an_object_reach_each_driver_as_a_sub_object(
        autojump_clock: MockClock) -> None:
    run = await measure(two_drivers(), {"metrics": {"p99": {"unit": "ms"}, "throughput": {}}})
    assert run.returncode == 0, run.stderr
    assert measured(run, "20prom")[0]["metrics"] == {"p99": {"unit": "ms"}, "throughput": {}}
    assert measured(run, "10load")[0]["metrics"] == {}


async def test_requested_metrics_none_returned_is_a_failure(autojump_clock: MockClock) -> None:
    run = await measure({"10load": measure_script({"x": {}}, returns={})}, {"metrics": ["x"]})
    assert (run.final["status"], run.final["reason"]) == ("failed", "no-metrics")
    assert run.returncode == 1


async def test_sigterm_terminates_every_driver(autojump_clock: MockClock) -> None:
    run = await measure(two_drivers(window=30.0), {"metrics": ["throughput"]},
                        signals=((1.5, signal.SIGTERM),))
    assert (run.final["status"], run.final["reason"]) == ("aborted", "terminated")
    assert "10load, 20prom were running" in run.final["message"]
    assert run.returncode == 128 + signal.SIGTERM
    assert run.elapsed < 10


async def test_dry_run_shows_each_drivers_metrics_and_control(
        autojump_clock: MockClock) -> None:
    request = {"metrics": ["p99", "perf"],
               "control": {"duration": 60, "userdata": {"20prom": {"control": {"delay": 5}},
                                                        "99gone": {"control": {"delay": 1}}}}}
    run = await measure(two_drivers(), request, command=MeasureCommand.DRY_RUN, as_json=True)
    plan = run.final
    others = {"99gone": {"control": {"delay": 1}}}  # anyone's data: passed on
    assert plan["drivers"] == [
        {"driver": "10load", "metrics": [], "control": {"duration": 60, "userdata": others},
         "window_seconds": 60},
        {"driver": "20prom", "metrics": ["p99"],
         "control": {"duration": 60, "delay": 5, "userdata": others}, "window_seconds": 65}]
    assert plan["unowned_metrics"] == ["perf"] and plan["window_seconds"] == 60
    assert plan["unused_overrides"] == ["99gone"]
    notices = ["no driver describes perf; asked for anyway (the optimizer may derive them)",
               "control.userdata.99gone.control took effect nowhere: no measure driver is "
               "called 99gone"]
    assert plan["notices"] == notices
    assert measured(run, "20prom") == []  # described, never measured
    text = await measure(two_drivers(), request, command=MeasureCommand.DRY_RUN)
    # notes the one way (stderr, and so the run's record), never in the report itself
    assert [f"servo-agg: {notice}" for notice in notices] == text.stderr.splitlines()
    assert not any(line.startswith("note: ") for line in text.lines), text.lines
    assert "its own window (its override): 65 s (no overall limit)" in text.stdout_text
    assert "nothing was measured" in text.stdout_text


@pytest.mark.parametrize("control", [{"duration": "x"}, {"duration": -1},
                                     {"duration": 1e308, "warmup": 1e308}])
async def test_window_grace_without_a_window_says_it_limits_nothing(
        autojump_clock: MockClock, control: dict[str, Any]) -> None:
    """On stderr, in the ok line's servo-agg annotation, and in --dry-run's notices."""
    run = await measure(two_drivers(), {"metrics": ["throughput"], "control": control},
                        config=MeasureConfig(window_grace=1.0))
    assert run.returncode == 0, run.stderr
    [notice] = run.final["annotations"]["servo-agg"]
    assert notice.startswith("measure.window_grace does not limit 10load, 20prom: their "
                             "control's ") and notice.endswith(
        ", so no measurement window can be computed")
    assert f"servo-agg: {notice}" in run.stderr.splitlines()


async def test_dry_run_shows_a_window_grace_that_limits_nothing(
        autojump_clock: MockClock) -> None:
    run = await measure(two_drivers(), {"metrics": [], "control": {"duration": "x"}},
                        command=MeasureCommand.DRY_RUN, config=MeasureConfig(window_grace=1.0),
                        as_json=True)
    notice = ('measure.window_grace does not limit 10load, 20prom: their control\'s duration '
              '"x" is not a number of seconds >= 0, so no measurement window can be computed')
    assert run.final["notices"] == [notice] and run.final["window_seconds"] is None
    assert run.stderr.splitlines() == [f"servo-agg: {notice}"]


async def test_dry_run_says_what_window_grace_does(autojump_clock: MockClock) -> None:
    run = await measure(two_drivers(), {"metrics": [], "control": {"duration": 60}},
                        command=MeasureCommand.DRY_RUN, config=MeasureConfig(window_grace=3.0))
    assert ("  measurement window: 60 s (a driver still running 3 s past its window is "
            "killed)") in run.lines


async def no_status(p: FakeMember) -> None:
    """Describes `errors` without a status (a description may), then measures and says
    only that it could not, with exit 0."""
    call = p.proc.spec.call
    if call is Call.INFO:
        await p.say({"version": "1", "has_cancel": False})
    elif call is Call.DESCRIBE:
        await p.say({"metrics": {"errors": {}}})
    else:
        json.loads(await p.read_request())
        await p.say({"message": "could not reach the metrics API"})


async def test_a_measurement_without_status_ok_fails_naming_its_driver(
        autojump_clock: MockClock) -> None:
    """As servo run directly would: its metrics, or its words, are not a success."""
    drivers = {"10prom": measure_script({"throughput": {}}), "20api": no_status}
    run = await measure(drivers, {"metrics": ["throughput", "errors"]})
    assert run.final["status"] == "failed", run.final
    assert "20api" in run.final["message"] and "has no status" in run.final["message"]
    assert run.returncode == 1
