"""Every driver call bounded, on trio's MockClock over fake drivers: config.yaml's
`io_timeout` standing in for servo's T, and what the reap tells of a call's resource
limits. Every time asserted is trio time."""

from __future__ import annotations

import io
import os
from pathlib import Path
from signal import SIGKILL, SIGTERM, SIGUSR1
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from aggregator.process.resources import LimitHits, ResourceUse
from aggregator.protocol.environment import CONFIG_IO_TIMEOUT, ServoEnvironment
from aggregator.protocol.result import judge
from aggregator.protocol.vocabulary import Reason
from aggregator.root.config import DriverBounds, ResourceLimits
from aggregator.supervision.call import SupervisionPolicy, Supervisor
from aggregator.supervision.output import Output
from aggregator.supervision.run import Run
from aggregator.supervision.session import Session
from aggregator.supervision.spec import CallOutcome
from tests.fakes import (
    FakeMember,
    FakeProcess,
    FakeSpawner,
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
LIMITED = {NAME: DriverBounds(limits=ResourceLimits(memory=64 * MIB, pids=32))}


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
        p.proc.use = ResourceUse(0.25, 3 * MIB, "cgroup")
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
