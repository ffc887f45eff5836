"""Every driver call bounded, on trio's MockClock over fake drivers: config.yaml's
`io_timeout` standing in for servo's T, what the reap tells of a call's resource limits,
and each driver's own deadline against chatter, the silence limit, servo's cancel,
window_grace, --version's budget and the kill cascade. Every time asserted is trio
time."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from signal import SIGKILL, SIGTERM, SIGUSR1
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from aggregator.measure.calls import MeasureCommand, MeasureJob
from aggregator.measure.commands import run_measure_job
from aggregator.process.call_limits import LimitHits
from aggregator.process.resources import ResourceUse
from aggregator.protocol.environment import CONFIG_IO_TIMEOUT, ServoEnvironment
from aggregator.protocol.measure import parse_measure_request
from aggregator.protocol.result import judge
from aggregator.protocol.vocabulary import Call, Reason
from aggregator.root.config import DriverBounds, MeasureConfig, ResourceLimits, RunBounds
from aggregator.supervision.call import SupervisionPolicy, Supervisor
from aggregator.supervision.output import Output
from aggregator.supervision.run import Run
from aggregator.supervision.session import Session
from aggregator.supervision.spec import CallOutcome, Problem
from tests.fakes import (
    FakeMember,
    FakeProcess,
    FakeSpawner,
    RecordingOutput,
    Script,
    fake_spec,
    open_fake_spawner,
)

pytestmark = pytest.mark.supervision

NAME = "10web"


def exactly(value: float) -> Any:
    return pytest.approx(value, abs=1e-9)


async def stubborn(p: FakeMember) -> None:
    """Says nothing, ignores SIGTERM and servo's cancel: only SIGKILL ends it."""
    p.ignore(SIGTERM, SIGUSR1)
    await trio.sleep_forever()


async def chatters_deaf(p: FakeMember) -> None:
    """A line on stderr every 0.5 s (life, so the line limit never runs out); ignores
    SIGTERM and servo's cancel."""
    p.ignore(SIGTERM, SIGUSR1)
    while True:
        await p.complain("working\n")
        await trio.sleep(0.5)


def unset_but_configured(io_timeout: float) -> ServoEnvironment:
    """servo sets no OPTUNE_IO_TIMEOUT; config.yaml's io_timeout stands in."""
    return ServoEnvironment(None, "all").with_fallback(io_timeout, CONFIG_IO_TIMEOUT)


async def one_call(spawner: FakeSpawner, environment: ServoEnvironment, *,
                   kill_grace: float = 0.5, cancel_grace: float = 3.0,
                   cancel_at: float | None = None) -> CallOutcome:
    """One call of NAME inside a whole Run (the way launch builds it), on MockClock."""
    outcomes: list[CallOutcome] = []
    servo_end, our_end = os.pipe()  # servo's stdout: never read, nothing is written to it
    output = Output(our_end, io.StringIO(), clock=trio.current_time)
    run = Run(servo_root=Path("/nonexistent"), env={}, environment=environment,
              kill_grace=kill_grace, cancel_grace=cancel_grace, output=output,
              heartbeat=False)

    async def command(session: Session) -> int:
        async with trio.open_nursery() as nursery:
            if cancel_at is not None:
                async def cancel() -> None:
                    await trio.sleep_until(cancel_at)
                    session.control.cancel()
                nursery.start_soon(cancel)
            outcomes.append(await session.call(fake_spec(NAME)))
            nursery.cancel_scope.cancel()
        return 0

    try:
        with trio.fail_after(600):
            await run.supervised(command, spawner)
    finally:
        output.close()
        os.close(servo_end)
        os.close(our_end)
    return outcomes[0]


@pytest.mark.parametrize(("io_timeout", "limit", "grace"), [
    (3.0, 2.0, 0.5),  # T - 1, and half of what T leaves after it
    (1.0, 0.5, 0.25),  # T <= 2: T/2, and T/4
])
async def test_io_timeout_is_used_exactly_as_servos_t_and_named_as_the_source(
        autojump_clock: MockClock, io_timeout: float, limit: float, grace: float) -> None:
    async with open_fake_spawner() as spawner:
        spawner.script(NAME, stubborn)
        outcome = await one_call(spawner, unset_but_configured(io_timeout), kill_grace=3.0)
    assert spawner.process(NAME).signals == [(exactly(limit), "group", SIGTERM),
                                             (exactly(limit + grace), "group", SIGKILL)]
    assert outcome.problem is not None
    assert outcome.problem.reason == Reason.TIMEOUT
    assert (f"sent nothing for {limit:.1f} s on stdout or stderr (limit {limit:g} s from "
            "io_timeout in config.yaml); killed") == outcome.problem.detail


async def test_io_timeout_cuts_the_cancel_grace_to_the_line_limit(
        autojump_clock: MockClock) -> None:
    async with open_fake_spawner() as spawner:
        spawner.script(NAME, chatters_deaf)
        outcome = await one_call(spawner, unset_but_configured(3.0), cancel_grace=10.0,
                                 cancel_at=0.5)
    assert spawner.process(NAME).signals == [(exactly(0.5), "leader", SIGUSR1),
                                             (exactly(2.5), "group", SIGTERM),
                                             (exactly(3.0), "group", SIGKILL)]
    assert outcome.problem is not None and outcome.problem.reason == Reason.CANCELED


async def test_without_t_from_servo_or_config_a_silent_driver_is_not_timed_out(
        autojump_clock: MockClock) -> None:
    """What io_timeout is for: without it (and without servo's T) nothing bounds silence."""
    async with open_fake_spawner() as spawner:
        spawner.script(NAME, stubborn)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one_call, spawner, ServoEnvironment(None, "all"))
            await trio.sleep(500)
            assert spawner.process(NAME).signals == []
            nursery.cancel_scope.cancel()
        spawner.check_on_exit = False


# -- resource limits: what the reap tells ---------------------------------------------------

MIB = 1 << 20
LIMITED = RunBounds({NAME: DriverBounds(limits=ResourceLimits(memory=64 * MIB, pids=32))})


async def limited_call(script: Script, *, io_timeout: float | None = 10.0,
                       trace: list[str] | None = None) -> tuple[CallOutcome, FakeProcess]:
    async with open_fake_spawner() as spawner:
        spawner.script(NAME, script)
        supervisor = Supervisor(
            SupervisionPolicy(io_timeout, 0.5, 3.0), spawner, bounds=LIMITED,
            trace=None if trace is None else lambda name, text: trace.append(text))
        with trio.fail_after(600):
            outcome = await supervisor.call(fake_spec(NAME))
    return outcome, spawner.process(NAME)


def oom_killed(count: int) -> Script:
    """Killed by SIGKILL after its cgroup counted `count` OOM kills."""
    async def script(p: FakeMember) -> None:
        await trio.sleep(1.0)
        p.proc.hits = LimitHits(oom_kills=count, pids_refused=0)
        p.deliver(SIGKILL)
        await trio.sleep_forever()
    return script


async def test_a_driver_the_oom_killer_ended_is_out_of_memory_naming_its_limit(
        autojump_clock: MockClock) -> None:
    outcome, _ = await limited_call(oom_killed(1))
    failure = judge(outcome, "all")
    assert failure is not None
    assert (failure.status, failure.reason) == ("failed", "out-of-memory")
    assert failure.line() == ("10web: failed: adjust: ran out of memory: the kernel's OOM "
                              "killer ended it at its memory limit of 64 MiB "
                              "(memory.events: oom_kill 1)")


async def test_an_outside_sigkill_is_not_taken_for_the_oom_killer(
        autojump_clock: MockClock) -> None:
    outcome, _ = await limited_call(oom_killed(0))
    failure = judge(outcome, "all")
    assert failure is not None and failure.reason == "killed-by-signal"


async def test_under_the_rlimit_fallback_a_failed_allocation_is_out_of_memory(
        autojump_clock: MockClock) -> None:
    async def starves(p: FakeMember) -> int:
        await p.complain("Traceback (most recent call last):\nMemoryError\n")
        return 1

    outcome, _ = await limited_call(starves)
    assert outcome.problem is not None
    assert outcome.problem.reason == Reason.OUT_OF_MEMORY
    assert "under its memory limit of 64 MiB (RLIMIT_DATA)" in outcome.problem.detail


async def test_a_driver_supervision_stopped_keeps_that_reason(
        autojump_clock: MockClock) -> None:
    """Silent past the line limit, and its stderr mentions memory: still a timeout."""
    async def silent_after_a_word(p: FakeMember) -> None:
        p.proc.hits = LimitHits(oom_kills=1)
        await p.complain("MemoryError while caching\n")
        await trio.sleep_forever()

    outcome, proc = await limited_call(silent_after_a_word, io_timeout=3.0)
    assert proc.sent(SIGTERM) == [(exactly(2.0), "group", SIGTERM)]
    assert outcome.problem is not None and outcome.problem.reason == Reason.TIMEOUT


async def test_the_pids_limit_reached_is_in_the_drivers_own_failure_and_in_v(
        autojump_clock: MockClock) -> None:
    async def cannot_fork(p: FakeMember) -> int:
        p.proc.hits = LimitHits(oom_kills=0, pids_refused=2)
        p.proc.resource_use = ResourceUse(0.2, 0.05, 3 * MIB, "cgroup")
        await p.say({"status": "failed", "reason": "fork-failed",
                     "message": "could not start helper"})
        return 1

    trace: list[str] = []
    outcome, _ = await limited_call(cannot_fork, trace=trace)
    failure = judge(outcome, "all")
    assert failure is not None
    assert (failure.status, failure.reason) == ("failed", "fork-failed")
    assert failure.message == ("adjust: could not start helper (exit code 1); its pids limit "
                               "of 32 was reached: 2 forks refused (pids.events: max 2)")
    assert trace[-1] == ("exit 1 after 0.000 s; cpu 0.250 s, peak 3 MiB (cgroup) (its pids "
                         "limit of 32 was reached: 2 forks refused (pids.events: max 2))")


REJECTED = {"status": "rejected", "reason": "out-of-range", "message": "size 8192 > 4096"}


async def test_a_drivers_own_rejected_result_stands_whatever_its_stderr_says_of_memory(
        autojump_clock: MockClock) -> None:
    """A memory limit never turns a driver's own verdict into out-of-memory: its words on
    stderr may be about its application, not itself (RLIMIT_DATA here: no OOM count)."""
    async def rejects(p: FakeMember) -> int:
        await p.complain("the cache container ran out of memory last night\n")
        await p.say(REJECTED)
        return 1

    outcome, _ = await limited_call(rejects)
    assert outcome.problem is None and outcome.limit_note is None
    failure = judge(outcome, "all")
    assert failure is not None
    assert (failure.status, failure.reason) == ("rejected", "out-of-range")
    assert failure.message == "adjust: size 8192 > 4096 (exit code 1)"


async def test_a_drivers_own_result_stands_the_oom_killers_count_is_said_in_it(
        autojump_clock: MockClock) -> None:
    """The cgroup's count is authoritative, but the driver spoke for itself and exited
    (a child of it was the one the OOM killer ended): its status and reason stand."""
    async def rejects_after_a_kill(p: FakeMember) -> int:
        p.proc.hits = LimitHits(oom_kills=1, pids_refused=0)
        await p.say(REJECTED)
        return 1

    outcome, _ = await limited_call(rejects_after_a_kill)
    failure = judge(outcome, "all")
    assert failure is not None
    assert (failure.status, failure.reason) == ("rejected", "out-of-range")
    assert failure.message == (
        "adjust: size 8192 > 4096 (exit code 1); ran out of memory: the kernel's OOM killer "
        "ended it at its memory limit of 64 MiB (memory.events: oom_kill 1)")


@pytest.mark.parametrize(("peak", "reason"), [
    (20 * MIB, "driver-failed"),  # far from its limit: the words alone do not tell
    (62 * MIB, "out-of-memory"),  # it grew into its 64 MiB
])
async def test_after_a_result_of_its_own_the_words_on_stderr_need_corroboration(
        autojump_clock: MockClock, peak: int, reason: str) -> None:
    async def ok_then_fails(p: FakeMember) -> int:
        p.proc.resource_use = ResourceUse(0.1, 0.0, peak)
        await p.say({"status": "ok", "reason": "success"})
        await p.complain("MemoryError\n")
        return 1

    outcome, _ = await limited_call(ok_then_fails)
    failure = judge(outcome, "all")
    assert failure is not None and failure.reason == reason


# -- the deadline ---------------------------------------------------------------------------

def with_deadline(seconds: float, name: str = NAME) -> RunBounds:
    return RunBounds({name: DriverBounds(deadline=seconds)})


async def deadline_call(script: Script, deadline: float, *, io_timeout: float | None = None,
                        kill_grace: float = 0.5, cancel_grace: float = 3.0,
                        call: Call = Call.ADJUST, cancel_at: float | None = None,
                        head_start: float | None = None) -> tuple[CallOutcome, FakeProcess]:
    """One call of NAME, whose own deadline is `deadline`; `head_start`: its process was
    started that long before supervision took it over."""
    spec = fake_spec(NAME, call)
    async with open_fake_spawner() as spawner:
        supervisor = Supervisor(SupervisionPolicy(io_timeout, kill_grace, cancel_grace),
                                spawner, bounds=with_deadline(deadline))
        with trio.fail_after(600):
            if head_start is not None:
                spawner.head_start(spec, script)
                await trio.sleep(head_start)
            else:
                spawner.script(NAME, script)
            async with trio.open_nursery() as nursery:
                if cancel_at is not None:
                    async def cancel() -> None:
                        await trio.sleep_until(cancel_at)
                        supervisor.control.cancel()
                    nursery.start_soon(cancel)
                outcome = await supervisor.call(spec)
                nursery.cancel_scope.cancel()
    return outcome, spawner.process(NAME)


def chatter(every: float, *, deaf: bool = True) -> Script:
    """A progress line every `every` s forever (deaf: ignoring SIGTERM and SIGUSR1)."""
    async def script(p: FakeMember) -> None:
        if deaf:
            p.ignore(SIGTERM, SIGUSR1)
        while True:
            await p.say({"progress": 1, "message": "still going"})
            await trio.sleep(every)
    return script


@pytest.mark.parametrize("call", list(Call))
async def test_chatter_is_no_progress_every_call_is_killed_at_its_deadline(
        autojump_clock: MockClock, call: Call) -> None:
    """A line every 0.5 s never trips the silence limit (T=3: 2 s); the deadline still
    ends it, the cascade starting at the deadline itself."""
    outcome, proc = await deadline_call(chatter(0.5), 5.0, io_timeout=3.0, call=call)
    assert proc.signals == [(exactly(5.0), "group", SIGTERM), (exactly(5.5), "group", SIGKILL)]
    assert outcome.problem == Problem(Reason.TIMEOUT, "ran 5.0 s, past its deadline of 5 s; "
                                                      "killed")
    failure = judge(outcome, "all")
    assert failure is not None and failure.line() == (
        f"10web: failed: {call}: ran 5.0 s, past its deadline of 5 s; killed")


async def test_the_deadline_holds_with_no_t_at_all(autojump_clock: MockClock) -> None:
    outcome, proc = await deadline_call(chatter(0.5), 7.0, io_timeout=None, kill_grace=2.0)
    assert proc.signals == [(exactly(7.0), "group", SIGTERM), (exactly(9.0), "group", SIGKILL)]
    assert outcome.problem is not None and outcome.problem.reason == Reason.TIMEOUT


@pytest.mark.parametrize(("deadline", "killed_at", "detail"), [
    (5.0, 5.0, "ran 5.0 s, past its deadline of 5 s; killed"),  # before the silence limit
    (20.0, 9.0, "sent nothing for 9.0 s on stdout or stderr (limit 9 s from "
                "OPTUNE_IO_TIMEOUT); killed"),  # after it: the silence limit ends it
])
async def test_the_deadline_and_the_silence_limit_whichever_comes_first(
        autojump_clock: MockClock, deadline: float, killed_at: float, detail: str) -> None:
    outcome, proc = await deadline_call(stubborn, deadline, io_timeout=10.0)
    assert proc.sent(SIGTERM) == [(exactly(killed_at), "group", SIGTERM)]
    assert outcome.problem == Problem(Reason.TIMEOUT, detail)


async def test_a_driver_done_before_its_deadline_is_not_touched(
        autojump_clock: MockClock) -> None:
    async def answers(p: FakeMember) -> None:
        await trio.sleep(4.9)
        await p.say({"status": "ok", "reason": "success"})

    outcome, proc = await deadline_call(answers, 5.0)
    assert proc.signals == [(exactly(4.9), "group", SIGKILL)]  # only what is left of its group
    assert outcome.problem is None and outcome.exit_code == 0


async def test_a_head_start_counts_its_deadline_from_its_real_start(
        autojump_clock: MockClock) -> None:
    outcome, proc = await deadline_call(chatter(0.5), 5.0, head_start=1.5)
    assert proc.sent(SIGTERM) == [(exactly(5.0), "group", SIGTERM)]  # started at 0, not 1.5
    assert outcome.problem is not None and "ran 5.0 s" in outcome.problem.detail


@pytest.mark.parametrize(("cancel_at", "killed_at"), [
    (1.0, 4.0),  # the cancel grace (3 s) runs out first
    (4.0, 5.0),  # the deadline comes first: the cascade does not wait for the grace
])
async def test_servos_cancel_and_the_deadline_whichever_comes_first(
        autojump_clock: MockClock, cancel_at: float, killed_at: float) -> None:
    outcome, proc = await deadline_call(chatter(0.5), 5.0, cancel_at=cancel_at)
    assert proc.signals == [(exactly(cancel_at), "leader", SIGUSR1),
                            (exactly(killed_at), "group", SIGTERM),
                            (exactly(killed_at + 0.5), "group", SIGKILL)]
    assert outcome.problem is not None and outcome.problem.reason == Reason.CANCELED


@pytest.mark.parametrize(("deadline", "killed_at", "past"), [
    (5.0, 3.0, "its 2 s measurement window and the 1 s window_grace"),
    (2.5, 2.5, "its deadline of 2.5 s"),
])
async def test_in_measure_the_deadline_and_window_grace_the_earlier_applies(
        autojump_clock: MockClock, deadline: float, killed_at: float, past: str) -> None:
    """The measure front-end's own path: its window limit, and the driver's deadline."""
    async def measures_too_long(p: FakeMember) -> int | None:
        if p.proc.spec.call is Call.DESCRIBE:
            await p.say({"status": "ok", "metrics": {"rps": {"unit": "1/s"}}})
            return 0
        await p.read_request()
        await chatter(0.5)(p)
        return None

    async with open_fake_spawner() as spawner:
        spawner.script(NAME, measures_too_long)
        output = RecordingOutput()
        session = Session(Supervisor(SupervisionPolicy(None, 0.5, 2.0), spawner,
                                     bounds=with_deadline(deadline)),
                          output, ServoEnvironment(None, "all"))
        job = MeasureJob(MeasureCommand.MEASURE, "app", MeasureConfig(window_grace=1.0),
                         (fake_spec(NAME, Call.MEASURE).driver,),
                         parse_measure_request(json.dumps(
                             {"metrics": ["rps"], "control": {"duration": 2}}).encode()))
        with trio.fail_after(600):
            code = await run_measure_job(job, session)
    assert code == 1
    measured = next(p for p in spawner.started if p.spec.call is Call.MEASURE)
    assert measured.sent(SIGTERM) == [(exactly(killed_at), "group", SIGTERM)]
    final = json.loads(output.lines[-1][1])
    assert final["reason"] == "timeout"
    assert f"10web: failed: measure: ran {killed_at:.1f} s, past {past}; killed" in (
        final["message"])


async def test_the_deadline_and_versions_answer_budget_whichever_comes_first(
        autojump_clock: MockClock) -> None:
    """--version's --info calls share an answer deadline (its cascade over by then); a
    driver's own deadline still starts the cascade at its end when that is earlier."""
    async with open_fake_spawner() as spawner:
        for name in ("10web", "20db"):
            spawner.script(name, chatter(0.5))
        supervisor = Supervisor(SupervisionPolicy(10.0, 0.5, 3.0), spawner,
                                bounds=with_deadline(2.0, "10web"))
        with trio.fail_after(600):
            outcomes = await supervisor.call_all(
                [fake_spec(n, Call.INFO) for n in ("10web", "20db")], parallel=True,
                deadline=9.5)
    assert spawner.process("10web").sent(SIGTERM) == [(exactly(2.0), "group", SIGTERM)]
    assert spawner.process("20db").sent(SIGTERM) == [(exactly(9.0), "group", SIGTERM)]
    details = [o.problem.detail if o.problem else "" for o in outcomes]
    assert details[0] == "ran 2.0 s, past its deadline of 2 s; killed"
    assert details[1].startswith("did not answer within the time servo allows")
