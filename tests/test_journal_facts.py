"""What supervision keeps of each driver call for the run's record (supervision/facts.py),
on trio's MockClock with fake drivers: how each call ended, its progress, the tail of its
stderr (kept on success too), its result line (bounded), what it used, when it started;
and the rollback steps of an adjust."""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest
import trio
import trio.testing

from aggregator.adjust.apply import adjust
from aggregator.adjust.calls import AdjustJob, Command
from aggregator.limits import JOURNAL_RESULT_BYTES, JOURNAL_STDERR_TAIL_BYTES
from aggregator.process.resources import ResourceUse
from aggregator.protocol.environment import ServoEnvironment
from aggregator.protocol.request import parse_request
from aggregator.protocol.vocabulary import Call
from aggregator.root.config import AggregatorConfig
from aggregator.supervision.call import SupervisionPolicy, Supervisor
from aggregator.supervision.control import RunControl
from aggregator.supervision.facts import CallFacts, RunFacts
from aggregator.supervision.session import Session
from aggregator.supervision.spec import CallEnd
from tests.fakes import FakeMember, RecordingOutput, Script, fake_spec, open_fake_spawner

pytestmark = pytest.mark.supervision

OK = {"status": "ok", "reason": "success"}
NAME = "10web"


async def facts_of(script: Script | None, *, control: RunControl | None = None,
                   at: float | None = None, stop: str = "", spawn_error: OSError | None = None,
                   used: ResourceUse | None = None) -> CallFacts:
    """The facts one supervised call of `script` leaves (T = 10 s); `stop` (cancel or
    terminate) is done to the run at trio time `at`."""
    facts = RunFacts()
    facts.use_clock(trio.current_time)  # the run started at trio time 0
    control = control if control is not None else RunControl()
    async with open_fake_spawner() as spawner:
        if script is None:
            assert spawn_error is not None
            spawner.fail(NAME, spawn_error)
        else:
            spawner.script(NAME, script)
        supervisor = Supervisor(SupervisionPolicy(10.0, 0.5, 3.0), spawner, control,
                                facts=facts)

        async def stopper() -> None:
            assert at is not None
            await trio.sleep_until(at)
            if stop == "cancel":
                control.cancel()
            else:
                control.terminate(signal.SIGTERM)

        async with trio.open_nursery() as nursery:
            if stop:
                nursery.start_soon(stopper)
            if used is not None:
                nursery.start_soon(_set_usage, spawner, used)
            await supervisor.call(fake_spec(NAME))
    assert len(facts.calls) == 1
    return facts.calls[0]


async def _set_usage(spawner: Any, used: ResourceUse) -> None:
    await trio.sleep(0.001)
    spawner.process(NAME).resource_use = used


async def test_a_good_call_keeps_its_progress_result_and_stderr(
        autojump_clock: trio.testing.MockClock) -> None:
    async def driver(p: FakeMember) -> int:
        await trio.sleep(1)
        for percent in (10, 50, 90):
            await p.say({"progress": percent, "message": f"at {percent}"})
            await p.complain(f"log line {percent}\n")
        await trio.sleep(1)
        await p.say(OK)
        return 0

    call = await facts_of(driver, used=ResourceUse(0.25, 0.05, 20 << 20))
    assert (call.driver, call.call, call.argv) == (NAME, Call.ADJUST, (f"/fake/adjust.d/{NAME}",
                                                                       "app"))
    assert (call.end, call.exit_code, call.signal) == (CallEnd.EXITED, 0, None)
    assert (call.status, call.reason, call.detail) == ("ok", "success", "")
    assert call.start == pytest.approx(0, abs=1e-3)
    assert call.duration == pytest.approx(2, abs=1e-3)
    assert call.progress_count == 3
    assert json.loads(call.first_progress or "") == {"progress": 10, "message": "at 10"}
    assert json.loads(call.last_progress or "") == {"progress": 90, "message": "at 90"}
    assert json.loads(call.result or "") == OK
    assert call.result_bytes == len(json.dumps(OK))
    # Kept on success too: what a driver logs is what an operator looks for afterwards.
    assert call.stderr_tail == "log line 10\nlog line 50\nlog line 90\n"
    assert call.stderr_bytes == len(call.stderr_tail)
    assert call.resource_use == ResourceUse(0.25, 0.05, 20 << 20)


async def test_only_the_tail_of_a_flood_of_stderr_and_the_start_of_a_long_result_are_kept(
        autojump_clock: trio.testing.MockClock) -> None:
    long_result = {**OK, "message": "x" * 10_000}

    async def driver(p: FakeMember) -> int:
        for i in range(50):
            await p.complain(f"{i:04d}" + "." * 4000 + "\n")
        await p.say(long_result)
        return 0

    call = await facts_of(driver)
    assert call.stderr_bytes == 50 * 4005
    assert len(call.stderr_tail) == JOURNAL_STDERR_TAIL_BYTES
    assert call.stderr_tail.endswith("0049" + "." * 4000 + "\n")
    assert call.result_bytes == len(json.dumps(long_result))
    assert call.result == json.dumps(long_result)[:JOURNAL_RESULT_BYTES]


async def test_a_silent_driver_ends_as_a_timeout(
        autojump_clock: trio.testing.MockClock) -> None:
    async def driver(p: FakeMember) -> int:
        p.ignore(signal.SIGTERM)
        await trio.sleep_forever()
        return 0

    call = await facts_of(driver)
    assert (call.end, call.signal) == (CallEnd.TIMEOUT, "SIGKILL")
    assert (call.status, call.reason) == ("failed", "timeout")
    assert call.detail.startswith("sent nothing for 9.0 s")
    assert call.duration == pytest.approx(9 + 0.5, abs=1e-3)  # the limit, then the grace


async def test_a_driver_killed_for_its_output_ends_as_killed(
        autojump_clock: trio.testing.MockClock) -> None:
    async def driver(p: FakeMember) -> int:
        await p.write("not json\n")
        await trio.sleep_forever()
        return 0

    call = await facts_of(driver)
    assert (call.end, call.signal, call.reason) == (CallEnd.KILLED, "SIGTERM", "bad-output")


async def test_a_driver_that_dies_of_its_own_signal_ends_as_signaled(
        autojump_clock: trio.testing.MockClock) -> None:
    async def driver(p: FakeMember) -> int:
        await trio.sleep(0.5)
        return -signal.SIGSEGV

    call = await facts_of(driver)
    assert (call.end, call.exit_code, call.signal) == (CallEnd.SIGNALED, -11, "SIGSEGV")
    assert call.reason == "killed-by-signal"


async def test_a_canceled_driver_that_answers_ends_as_canceled_with_its_exit(
        autojump_clock: trio.testing.MockClock) -> None:
    async def driver(p: FakeMember) -> int:
        p.catch(signal.SIGUSR1)
        await p.say({"progress": 5})
        await p.next_signal()
        await p.say({"status": "canceled", "reason": "canceled", "message": "stopped"})
        return 3

    call = await facts_of(driver, stop="cancel", at=1.0)
    assert (call.end, call.exit_code) == (CallEnd.CANCELED, 3)
    assert call.status == "canceled"


async def test_a_terminated_driver_ends_as_stopped(
        autojump_clock: trio.testing.MockClock) -> None:
    async def driver(p: FakeMember) -> int:
        await trio.sleep_forever()
        return 0

    call = await facts_of(driver, stop="terminate", at=2.0)
    assert (call.end, call.signal, call.reason) == (CallEnd.STOPPED, "SIGTERM", "terminated")
    assert call.duration == pytest.approx(2, abs=1e-3)


async def test_a_driver_that_could_not_start_is_recorded_as_not_started(
        autojump_clock: trio.testing.MockClock) -> None:
    call = await facts_of(None, spawn_error=PermissionError(13, "denied"))
    assert (call.end, call.exit_code, call.reason) == (CallEnd.NOT_STARTED, None,
                                                        "spawn-failed")
    assert call.duration == 0


def rollback_driver(component: str, fails: bool) -> Script:
    async def driver(p: FakeMember) -> int:
        if p.proc.spec.call == Call.QUERY:
            await p.say({"application": {"components": {component: {"settings": {
                "x": {"value": 1, "min": 0, "max": 10}}}}}})
            return 0
        await p.read_request()
        if fails:
            await p.say({"status": "rejected", "reason": "out-of-range", "message": "no"})
            return 1
        await p.say(OK)
        return 0
    return driver


async def test_each_rollback_step_is_kept(autojump_clock: trio.testing.MockClock) -> None:
    drivers = {"01a": rollback_driver("a", False), "02b": rollback_driver("b", True)}
    request = {"application": {"components": {c: {"settings": {"x": {"value": 5}}}
                                              for c in "ab"}}}
    async with open_fake_spawner() as spawner:
        for name, script in drivers.items():
            spawner.script(name, script)
        session = Session(Supervisor(SupervisionPolicy(10.0, 0.5, 3.0), spawner),
                          RecordingOutput(), ServoEnvironment(10.0, "all"))
        job = AdjustJob(Command.ADJUST, "app", AggregatorConfig(on_failure="rollback"),
                        tuple(fake_spec(name).driver for name in drivers),
                        parse_request(json.dumps(request).encode()))
        assert await adjust(job, session) == 1
    steps = session.facts.rollback
    assert [(s.driver, s.outcome, dict(s.settings)) for s in steps] == [
        ("01a", "restored", {"a.x": 1})]
    assert [(c.driver, c.call) for c in session.facts.calls] == [
        ("01a", "query"), ("02b", "query"), ("01a", "adjust"), ("02b", "adjust"),
        ("01a", "rollback")]
