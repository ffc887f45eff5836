"""How `--check` asks the drivers (review 1, docs against code): as the run asks its first
question. One at a time by default; with parallel_queries (and always for measure, whose
drivers describe together), each round of --info and --query/--describe all at once,
each call with its own deadline, so a hung driver is still killed alone. Before asking,
whether the drivers a run starts together fit in the descriptors, as the run judges it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import trio
import trio.testing

from aggregator.protocol.environment import ServoEnvironment
from aggregator.protocol.vocabulary import Call
from aggregator.root.config import AggregatorConfig, parse_section
from aggregator.root.discovery import Driver
from aggregator.root.front_end import FrontEnd
from aggregator.supervision import run as run_module
from aggregator.supervision.output import Output
from aggregator.supervision.run import Run
from aggregator.tools.check import Probe, asks_at_once, room_for
from tests.fakes import FakeMember, FakeProcess, fake_spec, hangs_on_query, probe_fakes

NAMES = ("10a", "20b", "30c")


async def answers(p: FakeMember) -> int:
    """Each question answered after 1 s."""
    await trio.sleep(1)
    if p.proc.spec.call is Call.INFO:
        await p.say({"version": "1", "has_cancel": True})
    else:
        await p.say({"application": {"components": {p.proc.spec.driver.name: {
            "settings": {"x": {"value": 1, "min": 0, "max": 9}}}}}})
    return 0


async def probed(parallel: bool, hung: str | None = None,
                 ) -> tuple[list[Probe], list[FakeProcess]]:
    """NAMES probed (`hung` hanging in its --query) with T=10 s."""
    scripts = {name: hangs_on_query if name == hung else answers for name in NAMES}
    return await probe_fakes(scripts, ServoEnvironment(10.0, "all"), parallel=parallel)


def overlap(a: FakeProcess, b: FakeProcess) -> bool:
    assert a.exited_at is not None and b.exited_at is not None
    return a.started_at < b.exited_at and b.started_at < a.exited_at


@pytest.mark.supervision
@pytest.mark.parametrize("parallel", [False, True])
async def test_check_asks_one_at_a_time_or_each_round_at_once(
        autojump_clock: trio.testing.MockClock, parallel: bool) -> None:
    probes, processes = await probed(parallel)
    assert [p.driver.name for p in probes] == list(NAMES)
    assert all(p.info.result == {"version": "1", "has_cancel": True} for p in probes)
    infos = [p for p in processes if p.spec.call is Call.INFO]
    queries = [p for p in processes if p.spec.call is Call.QUERY]
    assert len(infos) == len(queries) == 3
    together = [overlap(a, b) for group in (infos, queries)
                for a in group for b in group if a is not b]
    assert all(together) if parallel else not any(together)
    # the queries start once every --info is done: the rounds do not mix
    assert min(q.started_at for q in queries) >= max(i.exited_at or 0 for i in infos)


@pytest.mark.supervision
async def test_at_once_a_hung_driver_is_killed_alone(
        autojump_clock: trio.testing.MockClock) -> None:
    probes, processes = await probed(True, hung="20b")
    by_name = {p.driver.name: p for p in probes}
    assert by_name["20b"].query.problem is not None
    assert by_name["20b"].query.problem.reason == "timeout"
    assert all(by_name[name].query.problem is None and by_name[name].query.result
               for name in ("10a", "30c"))
    ends = {p.spec.driver.name: p.exited_at for p in processes if p.spec.call is Call.QUERY}
    assert ends["10a"] == ends["30c"] == pytest.approx(2.0)  # answered, not held up
    assert ends["20b"] == pytest.approx(1.0 + 9.0, abs=1.0)  # its own line limit (T-1)


@pytest.mark.unit
@pytest.mark.parametrize(("section", "front", "at_once"), [
    ({}, FrontEnd.ADJUST, False), ({"parallel_queries": True}, FrontEnd.ADJUST, True),
    ({}, FrontEnd.MEASURE, True), ({"groups": "prefix"}, FrontEnd.ADJUST, False),
])
def test_check_asks_at_once_where_the_run_does(section: dict[str, object], front: FrontEnd,
                                               at_once: bool) -> None:
    assert asks_at_once(parse_section(section), front) is at_once


def a_run() -> Run:
    return Run(servo_root=Path("/fake"), env={}, environment=ServoEnvironment(None, "all"),
               kill_grace=0.5, cancel_grace=3.0,
               output=Output(stdout_fd=-1, stderr=io.StringIO()))


@pytest.mark.unit
def test_check_fails_drivers_a_run_would_refuse_for_want_of_descriptors(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_module, "drivers_that_fit", lambda: 2)
    monkeypatch.setattr(run_module, "descriptor_limit", lambda: 48)
    drivers = [Driver(name, Path("/fake/adjust.d") / name) for name in NAMES]
    run = a_run()
    assert room_for(run, drivers, "app", AggregatorConfig(), FrontEnd.ADJUST) is None
    level, text = room_for(run, drivers, "app", parse_section({"parallel_queries": True}),
                           FrontEnd.ADJUST) or ("", "")
    assert level == "FAIL"
    assert text.startswith("servo-agg would refuse every adjust (too-many-drivers): 3 "
                           "drivers must run at once (parallel_queries: every driver's "
                           "--query runs at once), but only 2 fit")
    level, text = room_for(run, drivers, "app", AggregatorConfig(), FrontEnd.MEASURE) or ("", "")
    assert level == "FAIL" and "servo-agg would refuse every measure" in text
    monkeypatch.setattr(run_module, "drivers_that_fit", lambda: 3)
    assert room_for(run, drivers, "app", AggregatorConfig(), FrontEnd.MEASURE) == (
        "ok", "file descriptors: the 3 drivers a run starts at once (measure drivers "
              "describe and measure all at once) fit")


def meeting_driver(me: str, other: str) -> str:
    """A shell driver whose answer says whether `other` was asked the same question while
    it waited (at most 5 s): "together" or "alone"."""
    descriptor = json.dumps({"application": {"components": {me: {"settings": {
        "x": {"value": 1, "min": 0, "max": 9}}}}}})
    return f"""
        touch "asked-{me}$1"
        seen=alone; i=0
        while [ $i -lt 100 ]; do
            if [ -e "asked-{other}$1" ]; then seen=together; break; fi
            sleep 0.05; i=$((i + 1))
        done
        if [ "$1" = --info ]; then echo '{{"version": "'$seen'", "has_cancel": true}}'
        else echo '{descriptor}'; echo "$seen" > "seen-{me}$1"; fi
        """


@pytest.mark.e2e
async def test_check_with_parallel_queries_asks_the_drivers_together(servo_root: Path,
                                                                     tag: str) -> None:
    from tests.support import run_adjust, write_driver

    write_driver(servo_root, "10a", meeting_driver("10a", "20b"), shebang="#!/bin/sh")
    write_driver(servo_root, "20b", meeting_driver("20b", "10a"), shebang="#!/bin/sh")
    (servo_root / "config.yaml").write_text("aggregator:\n  parallel_queries: true\n")
    run = await run_adjust(servo_root, "--check", "app", tag=tag)
    assert run.returncode == 0, "\n".join(run.lines)
    assert sum("--info: version together" in line for line in run.lines) == 2, run.lines
    assert [(servo_root / f"seen-{name}--query").read_text() for name in ("10a", "20b")] == [
        "together\n", "together\n"]
    assert any("[ok]" in line and "file descriptors: the 2 drivers a run starts at once"
               in line for line in run.lines)


@pytest.mark.unit
@pytest.mark.parametrize(("answer", "levels"), [
    ({"version": "1.2", "has_cancel": True}, ["ok"]),
    ({"version": 3, "has_cancel": False}, ["ok"]),  # a number is a version to --version
    ({"has_cancel": True}, ["FAIL"]),  # --version would name it failing and exit 1
    ({"version": ["1"], "has_cancel": True}, ["FAIL"]),
    ({"version": "1.2"}, ["ok", "note"]),  # nothing reads a driver's has_cancel
])
def test_check_judges_an_info_answer_as_version_does(answer: dict[str, object],
                                                     levels: list[str]) -> None:
    from aggregator.supervision.spec import CallEnd, CallOutcome
    from aggregator.supervision.versions import reported_version
    from aggregator.tools.check import Report, check_info

    outcome = CallOutcome(fake_spec("10a", Call.INFO), result=answer, exit_code=0,
                          end=CallEnd.EXITED)
    report = Report()
    check_info(report, outcome, None)
    assert [f.status for f in report.findings] == [
        {"ok": "ok", "note": "ok", "FAIL": "fail"}[level] for level in levels]
    assert [line.split("]")[0].strip(" [") for line in report.lines] == levels
    assert (reported_version(answer) is None) == ("FAIL" in levels)
