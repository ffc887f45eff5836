"""Supervision timing on trio's MockClock (autojump): the line limit, the kill cascade,
cancel and terminate, the exit drain, the call deadline and keep-alive, with fake driver
processes (tests/fakes.py), asserting the exact trio times the rules fix.

Every test starts at trio time 0 and runs in milliseconds of wall time; what only a kernel
shows (process groups, pidfds, pipes, orphans) stays in test_supervision.py and
test_supervisor_edges.py. Scripts are timed so that no driver action falls on the same
instant as a supervision deadline: trio orders simultaneous wake-ups arbitrarily.
"""

from __future__ import annotations

import itertools
import json
import signal
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing

from aggregator.adjust.apply import adjust
from aggregator.adjust.calls import AdjustJob, Command
from aggregator.adjust.queries import query, version
from aggregator.limits import (
    EXIT_DRAIN_MAX_SECONDS,
    EXIT_DRAIN_SECONDS,
    MAX_LINE_BYTES,
    REAP_LIMIT_SECONDS,
)
from aggregator.process.orphans import OrphanSweeper
from aggregator.protocol.environment import ServoEnvironment
from aggregator.protocol.request import parse_request
from aggregator.protocol.vocabulary import Call, Reason
from aggregator.root.config import AggregatorConfig
from aggregator.supervision.call import ProgressHandler, SupervisionPolicy, Supervisor
from aggregator.supervision.control import RunControl
from aggregator.supervision.session import Session
from aggregator.supervision.spec import CallOutcome, TimeLimit
from tests.fakes import (
    FakeMember,
    FakeProcess,
    FakeSpawner,
    RecordingOutput,
    Script,
    fake_spec,
    hangs,
    hangs_deaf_to_sigterm,
    open_fake_spawner,
)

pytestmark = pytest.mark.supervision

SIGTERM, SIGKILL, SIGUSR1 = signal.SIGTERM, signal.SIGKILL, signal.SIGUSR1
NAME = "10web"
OK = {"status": "ok", "reason": "success"}
MockClock = trio.testing.MockClock
TRIO_TIME_BOUND = 600.0  # seconds of trio time any test may take (a hang fails, at once)


def exactly(t: float, within: float = 1e-9) -> Any:
    """A trio time the rules fix (within float rounding of the clock's jumps)."""
    return pytest.approx(t, rel=0, abs=within)


@dataclass
class Ran:
    outcome: CallOutcome
    proc: FakeProcess
    ended: float  # trio time the call returned

    @property
    def signals(self) -> list[tuple[float, str, int]]:
        return self.proc.signals

    @property
    def reason(self) -> str | None:
        return None if self.outcome.problem is None else self.outcome.problem.reason

    @property
    def detail(self) -> str:
        return "" if self.outcome.problem is None else self.outcome.problem.detail


async def run_call(script: Script, *, io_timeout: float | None = 10.0, kill_grace: float = 0.5,
                   cancel_grace: float = 3.0, control: RunControl | None = None,
                   on_progress: ProgressHandler | None = None, deadline: float | None = None,
                   stdin: bytes = b"", spawn_seconds: float = 0.0,
                   actions: Sequence[tuple[float, Callable[[], None]]] = (),
                   on_life: Callable[[], None] | None = None,
                   limit: TimeLimit | None = None) -> Ran:
    """One supervised call of a fake driver; `actions` run at the given trio times.

    Bounded in trio time: a call that never ends fails the test (in milliseconds)."""
    assert trio.current_time() == 0
    with trio.fail_after(TRIO_TIME_BOUND):
        return await _run_call(script, io_timeout=io_timeout, kill_grace=kill_grace,
                               cancel_grace=cancel_grace, control=control,
                               on_progress=on_progress, deadline=deadline, stdin=stdin,
                               spawn_seconds=spawn_seconds, actions=actions, on_life=on_life,
                               limit=limit)


async def _run_call(script: Script, *, io_timeout: float | None, kill_grace: float,
                    cancel_grace: float, control: RunControl | None,
                    on_progress: ProgressHandler | None, deadline: float | None,
                    stdin: bytes, spawn_seconds: float,
                    actions: Sequence[tuple[float, Callable[[], None]]],
                    on_life: Callable[[], None] | None, limit: TimeLimit | None) -> Ran:
    async with open_fake_spawner() as spawner:
        spawner.script(NAME, script)
        spawner.spawn_seconds = spawn_seconds
        supervisor = Supervisor(SupervisionPolicy(io_timeout, kill_grace, cancel_grace),
                                spawner, control)

        async def at(when: float, action: Callable[[], None]) -> None:
            await trio.sleep_until(when)
            action()

        async with trio.open_nursery() as nursery:
            for when, action in actions:
                nursery.start_soon(at, when, action)
            outcome = await supervisor.call(fake_spec(NAME, stdin=stdin), on_progress,
                                            on_life=on_life, deadline=deadline,
                                            limit=limit)
            ended = trio.current_time()
            nursery.cancel_scope.cancel()
    return Ran(outcome, spawner.process(NAME), ended)


def chatty(interval: float, *, ignore_term: bool = False) -> Script:
    """A progress line every `interval` seconds, forever."""
    async def script(p: FakeMember) -> None:
        if ignore_term:
            p.ignore(SIGTERM)
        while True:
            await p.say({"progress": 1})
            await trio.sleep(interval)
    return script


# -- the line limit and the kill cascade ---------------------------------------------------

@pytest.mark.parametrize(("io_timeout", "kill_grace", "limit", "grace"), [
    (10.0, 0.5, 9.0, 0.5),
    (30.0, 0.5, 29.0, 0.5),
    (10.0, 0.2, 9.0, 0.2),
    (10.0, 3.0, 9.0, 0.5),  # the grace is cut to half of what T leaves after the limit
    (2.0, 0.5, 1.0, 0.5),  # T <= 2: the limit is T/2
    (1.0, 0.5, 0.5, 0.25),
])
async def test_a_silent_driver_gets_sigterm_at_the_line_limit_and_sigkill_after_the_grace(
        autojump_clock: MockClock, io_timeout: float, kill_grace: float, limit: float,
        grace: float) -> None:
    ran = await run_call(hangs_deaf_to_sigterm, io_timeout=io_timeout, kill_grace=kill_grace)
    assert ran.signals == [(exactly(limit), "group", SIGTERM),
                           (exactly(limit + grace), "group", SIGKILL)]
    assert ran.reason == Reason.TIMEOUT
    assert f"sent nothing for {limit:.1f} s" in ran.detail
    assert ran.outcome.exit_code == -SIGKILL
    assert ran.ended == exactly(limit + grace)
    assert ran.outcome.elapsed == exactly(limit + grace)


async def test_a_driver_that_dies_of_sigterm_is_not_waited_for(autojump_clock: MockClock) -> None:
    """The grace ends with the driver: the group's SIGKILL follows at once, for whatever
    is left of the group, and the driver's own status is its death by SIGTERM."""
    ran = await run_call(hangs, io_timeout=10.0)
    assert ran.signals == [(exactly(9.0), "group", SIGTERM), (exactly(9.0), "group", SIGKILL)]
    assert ran.outcome.exit_code == -SIGTERM
    assert ran.proc.exited_at == exactly(9.0)
    assert ran.ended == exactly(9.0)
    assert ran.reason == Reason.TIMEOUT


async def test_the_groups_sigkill_takes_a_child_that_ignores_sigterm_once_the_driver_exits(
        autojump_clock: MockClock) -> None:
    children: list[FakeMember] = []

    async def cleans_up(p: FakeMember) -> int:
        p.catch(SIGTERM)
        child = p.spawn(name="helper", holds=set())
        child.ignore(SIGTERM)
        children.append(child)
        await p.say({"progress": 5})
        await p.next_signal()
        await trio.sleep(0.3)  # its own cleanup, well within the grace
        return 3

    ran = await run_call(cleans_up, io_timeout=10.0)
    assert ran.signals == [(exactly(9.0), "group", SIGTERM), (exactly(9.3), "group", SIGKILL)]
    assert ran.outcome.exit_code == 3
    assert children[0].exit_code == -SIGKILL
    assert children[0].ended_at == exactly(9.3)
    assert ran.ended == exactly(9.3)


async def test_the_line_limit_applies_to_each_line_not_to_the_whole_call(
        autojump_clock: MockClock) -> None:
    """A line every T-2 s for ten times T: never killed."""
    async def steady(p: FakeMember) -> None:
        for i in range(17):
            await p.say({"progress": i * 5})
            await trio.sleep(3.0)
        await p.say(OK)

    ran = await run_call(steady, io_timeout=5.0)  # limit 4 s
    assert ran.outcome.problem is None
    assert ran.outcome.result == OK
    assert ran.signals == [(exactly(51.0), "group", SIGKILL)]  # the group, after the exit
    assert ran.outcome.exit_code == 0
    assert ran.ended == exactly(51.0)


async def test_the_limit_counts_from_the_last_line_of_a_burst(autojump_clock: MockClock) -> None:
    async def bursts(p: FakeMember) -> None:
        await trio.sleep(3.5)
        for _ in range(100):
            await p.say({"progress": 1})
        await trio.sleep(3.9)
        await p.write(json.dumps({"progress": 2}) + "\n" * 50)  # one write, many lines
        await trio.sleep_forever()

    ran = await run_call(bursts, io_timeout=5.0)  # limit 4 s
    assert ran.signals[0] == (exactly(7.4 + 4.0), "group", SIGTERM)
    assert ran.reason == Reason.TIMEOUT
    assert "sent nothing for 4.0 s" in ran.detail


async def test_a_line_counts_when_its_newline_arrives(autojump_clock: MockClock) -> None:
    """Fragments of a line are life too (servo's silence limit counts bytes): the limit
    counts from the newline, the last byte."""
    async def dribbles(p: FakeMember) -> None:
        await p.say({"progress": 1})
        for fragment in ('{"pro', 'gress"', ": 2}"):
            await trio.sleep(1.0)
            await p.write(fragment)
        await trio.sleep(1.5)
        await p.write("\n")  # at 4.5
        await trio.sleep_forever()

    ran = await run_call(dribbles, io_timeout=5.0)
    assert ran.signals[0] == (exactly(8.5), "group", SIGTERM)  # T-1 after the last byte
    assert ran.reason == Reason.TIMEOUT


# -- cancel --------------------------------------------------------------------------------

async def test_cancel_sends_sigusr1_to_the_leader_only_and_a_driver_that_answers_is_not_killed(
        autojump_clock: MockClock) -> None:
    children: list[FakeMember] = []

    async def polite(p: FakeMember) -> int:
        p.catch(SIGUSR1)
        children.append(p.spawn(name="helper", holds=set()))  # dies of SIGUSR1 if it gets one
        await p.say({"progress": 10})
        await p.next_signal()
        await trio.sleep(1.0)
        await p.say({"status": "canceled", "reason": "canceled", "message": "stopped"})
        return 0

    control = RunControl()
    ran = await run_call(polite, io_timeout=10.0, cancel_grace=3.0, control=control,
                         actions=[(2.0, control.cancel)])
    assert ran.signals == [(exactly(2.0), "leader", SIGUSR1), (exactly(3.0), "group", SIGKILL)]
    assert ran.outcome.problem is None
    assert ran.outcome.result == {"status": "canceled", "reason": "canceled",
                                  "message": "stopped"}
    assert ran.outcome.exit_code == 0
    assert children[0].exit_code == -SIGKILL  # not SIGUSR1: it was never sent to the group
    assert children[0].ended_at == exactly(3.0)
    assert control.interrupted == [NAME]


@pytest.mark.parametrize(("io_timeout", "cancel_grace", "killed_at"), [
    (None, 3.0, 5.0),
    (10.0, 3.0, 5.0),
    (10.0, 1.0, 3.0),
    (3.0, 3.0, 4.0),  # the grace is capped by the line limit (2 s)
    (1.0, 3.0, 2.5),  # ... here 0.5 s
])
async def test_a_driver_that_does_not_answer_the_cancel_is_killed_at_the_cancel_grace(
        autojump_clock: MockClock, io_timeout: float | None, cancel_grace: float,
        killed_at: float) -> None:
    async def deaf(p: FakeMember) -> None:
        p.catch(SIGUSR1)  # and never looks
        while True:  # its progress keeps the line limit happy
            await p.say({"progress": 1})
            await trio.sleep(0.3)

    control = RunControl()
    ran = await run_call(deaf, io_timeout=io_timeout, cancel_grace=cancel_grace,
                         control=control, actions=[(2.0, control.cancel)])
    assert ran.signals == [(exactly(2.0), "leader", SIGUSR1),
                           (exactly(killed_at), "group", SIGTERM),
                           (exactly(killed_at), "group", SIGKILL)]
    assert ran.reason == Reason.CANCELED
    assert "did not finish within the cancel grace" in ran.detail
    assert ran.outcome.exit_code == -SIGTERM


async def test_a_repeated_cancel_changes_nothing(autojump_clock: MockClock) -> None:
    async def deaf_and_stubborn(p: FakeMember) -> None:
        p.catch(SIGUSR1)
        p.ignore(SIGTERM)
        await trio.sleep_forever()

    control = RunControl()
    ran = await run_call(deaf_and_stubborn, io_timeout=None, cancel_grace=3.0, control=control,
                         actions=[(2.0, control.cancel), (3.0, control.cancel),
                                  (5.25, control.cancel)])  # the last in the kill grace
    assert ran.signals == [(exactly(2.0), "leader", SIGUSR1),
                           (exactly(5.0), "group", SIGTERM),
                           (exactly(5.5), "group", SIGKILL)]
    assert ran.reason == Reason.CANCELED
    assert control.interrupted == [NAME]


async def test_a_driver_without_a_sigusr1_handler_dies_of_the_cancel(
        autojump_clock: MockClock) -> None:
    control = RunControl()
    ran = await run_call(chatty(0.3), control=control, actions=[(2.0, control.cancel)])
    assert ran.signals == [(exactly(2.0), "leader", SIGUSR1), (exactly(2.0), "group", SIGKILL)]
    assert ran.outcome.exit_code == -SIGUSR1
    assert ran.reason == Reason.CANCELED
    assert "SIGUSR1" in ran.detail
    assert ran.ended == exactly(2.0)


# -- terminate -----------------------------------------------------------------------------

@pytest.mark.parametrize(("io_timeout", "kill_grace", "grace"), [
    (10.0, 0.5, 0.5),
    (None, 2.0, 2.0),  # no T: the configured grace, whole
    (10.0, 2.0, 0.5),
    (1.0, 0.5, 0.25),
])
async def test_terminate_runs_the_kill_cascade_at_once(
        autojump_clock: MockClock, io_timeout: float | None, kill_grace: float,
        grace: float) -> None:
    control = RunControl()
    ran = await run_call(chatty(0.3, ignore_term=True), io_timeout=io_timeout,
                         kill_grace=kill_grace, control=control,
                         actions=[(2.0, lambda: control.terminate(SIGTERM))])
    assert ran.signals == [(exactly(2.0), "group", SIGTERM),
                           (exactly(2.0 + grace), "group", SIGKILL)]
    assert ran.reason == Reason.TERMINATED
    assert ran.outcome.exit_code == -SIGKILL
    assert ran.ended == exactly(2.0 + grace)
    assert control.interrupted == [NAME]


async def test_terminate_during_the_cancel_grace_does_not_wait_for_it(
        autojump_clock: MockClock) -> None:
    async def deaf(p: FakeMember) -> None:
        p.catch(SIGUSR1)
        await trio.sleep_forever()

    control = RunControl()
    ran = await run_call(deaf, io_timeout=None, cancel_grace=3.0, control=control,
                         actions=[(1.0, control.cancel),
                                  (2.0, lambda: control.terminate(signal.SIGINT))])
    assert ran.signals == [(exactly(1.0), "leader", SIGUSR1),
                           (exactly(2.0), "group", SIGTERM),
                           (exactly(2.0), "group", SIGKILL)]
    assert ran.reason == Reason.TERMINATED


async def test_terminate_while_the_driver_is_being_started_stops_it_once_started(
        autojump_clock: MockClock) -> None:
    control = RunControl()
    ran = await run_call(chatty(0.3), control=control, spawn_seconds=0.01,
                         actions=[(0.005, lambda: control.terminate(SIGTERM))])
    assert ran.signals == [(exactly(0.01), "group", SIGTERM), (exactly(0.01), "group", SIGKILL)]
    assert ran.reason == Reason.TERMINATED
    assert control.interrupted == [NAME]


# -- not started ---------------------------------------------------------------------------

async def test_a_driver_that_cannot_be_executed_is_spawn_failed(
        autojump_clock: MockClock) -> None:
    async with open_fake_spawner() as spawner:
        spawner.fail(NAME, OSError(8, "Exec format error"))
        outcome = await Supervisor(SupervisionPolicy(10.0, 0.5, 3.0), spawner).call(
            fake_spec(NAME))
    assert outcome.problem is not None
    assert outcome.problem.reason == Reason.SPAWN_FAILED
    assert "could not be started" in outcome.problem.detail
    assert "Exec format error" in outcome.problem.detail
    assert outcome.exit_code is None
    assert spawner.started == []
    assert trio.current_time() == 0


@pytest.mark.parametrize(("stop", "reason"), [
    (RunControl.cancel, Reason.CANCELED),
    (lambda control: control.terminate(SIGTERM), Reason.TERMINATED),
], ids=["cancel", "terminate"])
async def test_no_driver_starts_once_the_run_is_stopping(
        autojump_clock: MockClock, stop: Callable[[RunControl], None], reason: Reason) -> None:
    control = RunControl()
    stop(control)
    async with open_fake_spawner() as spawner:
        spawner.script(NAME, chatty(0.3))
        outcome = await Supervisor(SupervisionPolicy(10.0, 0.5, 3.0), spawner, control).call(
            fake_spec(NAME))
    assert outcome.problem is not None
    assert outcome.problem.reason == reason
    assert "not started" in outcome.problem.detail
    assert spawner.started == []


async def head_start_canceled_before_its_call(
        script: Script, policy: SupervisionPolicy,
) -> tuple[FakeProcess, CallOutcome, RunControl]:
    """servo's SIGUSR1 while trio loads: a query's head start runs, the run is canceled,
    and 0.3 s later its call is made (and supervised to its end)."""
    control = RunControl()
    spec = fake_spec(NAME, Call.QUERY)
    async with open_fake_spawner() as spawner:
        early = spawner.head_start(spec, script)
        control.cancel()
        await trio.sleep(0.3)
        with trio.fail_after(TRIO_TIME_BOUND):
            outcome = await Supervisor(policy, spawner, control).call(spec)
    return early, outcome, control


async def test_a_head_start_already_running_when_servo_cancels_is_canceled_like_any_driver(
        autojump_clock: MockClock) -> None:
    async def polite(p: FakeMember) -> None:
        p.catch(SIGUSR1)
        await p.next_signal()
        await trio.sleep(1.0)
        await p.say({"status": "canceled", "reason": "canceled"})

    early, outcome, control = await head_start_canceled_before_its_call(
        polite, SupervisionPolicy(10.0, 0.5, 3.0))
    assert early.signals == [(exactly(0.3), "leader", SIGUSR1), (exactly(1.3), "group", SIGKILL)]
    assert outcome.result == {"status": "canceled", "reason": "canceled"}
    assert outcome.elapsed == exactly(1.3)  # from the head start's real start
    assert control.interrupted == [NAME]


async def deaf_chatter(p: FakeMember) -> None:
    """Ignores servo's cancel and keeps printing progress, so only the cancel grace (no
    line limit here) can end it."""
    p.ignore(SIGUSR1)
    while True:
        await p.say({"progress": 1})
        await trio.sleep(0.3)


async def test_a_cancel_that_came_before_a_head_start_was_attached_keeps_its_cancel_grace(
        autojump_clock: MockClock) -> None:
    """servo's SIGUSR1 while trio loaded: the head start is canceled as it is attached, and
    the cancel grace set then must hold through the call's own start (no T, no deadline:
    nothing else would ever end it)."""
    early, outcome, _ = await head_start_canceled_before_its_call(
        deaf_chatter, SupervisionPolicy(None, 0.5, 2.0))
    assert early.signals == [(exactly(0.3), "leader", SIGUSR1),
                             (exactly(2.3), "group", SIGTERM),
                             (exactly(2.3), "group", SIGKILL)]
    assert outcome.problem is not None and outcome.problem.reason == Reason.CANCELED
    assert "did not finish within the cancel grace" in outcome.problem.detail


async def test_a_sibling_canceled_before_it_was_attached_keeps_its_cancel_grace(
        autojump_clock: MockClock) -> None:
    """A measure driver whose siblings' control was canceled (another driver failed) before
    its call attached: the cancel grace holds, whatever the call's own bounds say."""
    siblings = RunControl()
    siblings.cancel()
    async with open_fake_spawner() as spawner:
        spawner.script(NAME, deaf_chatter, ignoring=(SIGUSR1,))  # before its first line
        with trio.fail_after(TRIO_TIME_BOUND):
            outcome = await Supervisor(SupervisionPolicy(None, 0.5, 2.0), spawner).call(
                fake_spec(NAME, Call.MEASURE), group=siblings,
                limit=TimeLimit(100.0, "its deadline of 100 s"))
    proc = spawner.process(NAME)
    assert proc.signals == [(exactly(0.0), "leader", SIGUSR1),
                            (exactly(2.0), "group", SIGTERM),
                            (exactly(2.0), "group", SIGKILL)]
    assert outcome.problem is not None and outcome.problem.reason == Reason.CANCELED
    assert siblings.interrupted == [NAME]


# -- the exit drain ------------------------------------------------------------------------

async def test_all_a_driver_wrote_before_exiting_is_read_however_slow_we_are(
        autojump_clock: MockClock) -> None:
    """80 s of reading after the exit (the supervisor takes 10 ms per line), far past the
    drain bound and the line limit: nothing is lost."""
    lines = 8000
    seen = 0

    def slow(message: dict[str, Any]) -> None:  # an aggregator on a very busy machine
        nonlocal seen
        seen += 1
        autojump_clock.jump(0.01)

    async def burst(p: FakeMember) -> None:
        line = json.dumps({"progress": 50, "message": "m" * 20}) + "\n"
        await p.write(line * lines + json.dumps(OK) + "\n")  # then exits, at once

    ran = await run_call(burst, io_timeout=3.0, on_progress=slow)
    assert ran.outcome.problem is None, ran.outcome.problem
    assert ran.outcome.result == OK
    assert seen == lines
    assert ran.proc.exited_at == 0
    assert ran.ended == exactly(lines * 0.01, within=1e-6)  # 8000 jumps of 0.01 s
    assert ran.signals == [(exactly(lines * 0.01, within=1e-6), "group", SIGKILL)]


@pytest.mark.parametrize("holds", [{"stdout"}, {"stderr"}, {"stdout", "stderr"}],
                         ids=["stdout", "stderr", "both"])
async def test_a_grandchild_holding_the_pipes_after_the_exit_holds_the_call_one_drain_step(
        autojump_clock: MockClock, holds: set[Any]) -> None:
    children: list[FakeMember] = []

    async def leaves_a_child(p: FakeMember) -> None:
        await trio.sleep(0.5)
        await p.say(OK)
        children.append(p.spawn(name="grandchild", holds=holds))

    ran = await run_call(leaves_a_child, io_timeout=10.0)
    end = 0.5 + EXIT_DRAIN_SECONDS
    assert ran.outcome.problem is None
    assert ran.outcome.result == OK
    assert ran.ended == exactly(end)
    assert ran.signals == [(exactly(end), "group", SIGKILL)]
    assert children[0].ended_at == exactly(end)


@pytest.mark.parametrize(("io_timeout", "pipe", "bound"), [
    (10.0, "stdout", EXIT_DRAIN_MAX_SECONDS),
    (10.0, "stderr", EXIT_DRAIN_MAX_SECONDS),
    (None, "stdout", EXIT_DRAIN_MAX_SECONDS),
    (1.5, "stdout", 0.75),  # never longer than the line limit
    (1.5, "stderr", 0.75),
])
async def test_a_grandchild_that_keeps_writing_holds_the_call_at_most_the_drain_bound(
        autojump_clock: MockClock, io_timeout: float | None, pipe: Any, bound: float) -> None:
    async def trickle(p: FakeMember) -> None:
        await trio.sleep(0.1)
        while True:
            await p.write(json.dumps({"progress": 99}) + "\n", pipe)
            await trio.sleep(0.2)

    async def leaves_a_writer(p: FakeMember) -> None:
        await trio.sleep(0.5)
        await p.say(OK)
        p.spawn(trickle, name="grandchild", holds={pipe})

    ran = await run_call(leaves_a_writer, io_timeout=io_timeout)
    assert ran.outcome.problem is None
    assert ran.outcome.result == OK
    assert ran.ended == exactly(0.5 + bound)
    assert ran.signals == [(exactly(0.5 + bound), "group", SIGKILL)]


@pytest.mark.parametrize("grandchild", [False, True])
async def test_a_partial_last_line_is_bad_output(autojump_clock: MockClock,
                                                 grandchild: bool) -> None:
    """With a grandchild on stdout there is no end of file: the fragment is found when the
    drain gives up."""
    async def half(p: FakeMember) -> None:
        await trio.sleep(0.5)
        await p.write('{"status": "ok"')
        if grandchild:
            p.spawn(name="grandchild", holds={"stdout"})

    ran = await run_call(half, io_timeout=10.0)
    end = 0.5 + (EXIT_DRAIN_SECONDS if grandchild else 0.0)
    assert ran.reason == Reason.BAD_OUTPUT
    assert "without a newline" in ran.detail
    assert ran.ended == exactly(end)
    assert ran.signals == [(exactly(end), "group", SIGKILL)]


async def test_a_grandchild_holding_stdin_does_not_hold_the_request_past_the_exit(
        autojump_clock: MockClock) -> None:
    """Nobody reads the request and a grandchild keeps stdin open: feeding it stops when
    the driver exits."""
    async def ignores_the_request(p: FakeMember) -> None:
        p.spawn(name="grandchild", holds={"stdin"})
        await trio.sleep(0.5)
        await p.say(OK)

    ran = await run_call(ignores_the_request, stdin=b'{"blob": "' + b"x" * 100_000 + b'"}\n')
    assert ran.outcome.problem is None
    assert ran.outcome.result == OK
    assert ran.ended == exactly(0.5)
    assert ran.proc.request == b""


async def test_a_driver_that_closes_stdin_unread_is_no_problem(autojump_clock: MockClock) -> None:
    async def closes_stdin(p: FakeMember) -> None:
        p.close("stdin")
        await trio.sleep(0.5)
        await p.say(OK)

    ran = await run_call(closes_stdin, stdin=b"{}\n")
    assert ran.outcome.problem is None
    assert ran.outcome.result == OK
    assert ran.ended == exactly(0.5)


# -- stdout closed, no exit ----------------------------------------------------------------

async def test_a_driver_that_closes_stdout_but_does_not_exit_is_killed_at_the_line_limit(
        autojump_clock: MockClock) -> None:
    async def lingers(p: FakeMember) -> None:
        await trio.sleep(1.0)
        await p.say(OK)
        p.close("stdout")
        await trio.sleep_forever()

    ran = await run_call(lingers, io_timeout=10.0)
    assert ran.signals == [(exactly(10.0), "group", SIGTERM), (exactly(10.0), "group", SIGKILL)]
    assert ran.reason == Reason.TIMEOUT
    assert "closed stdout but did not exit within 9 s" in ran.detail


async def test_closing_stdout_late_does_not_extend_the_line_limit(
        autojump_clock: MockClock) -> None:
    async def lingers(p: FakeMember) -> None:
        await trio.sleep(1.0)
        await p.say({"progress": 10})
        await trio.sleep(5.0)
        p.close("stdout")  # still silent
        await trio.sleep_forever()

    ran = await run_call(lingers, io_timeout=10.0)
    assert ran.signals[0] == (exactly(10.0), "group", SIGTERM)  # 9 s after its last line


# -- the call deadline ---------------------------------------------------------------------

@pytest.mark.parametrize(("io_timeout", "kill_grace", "sigterm_at"), [
    (10.0, 0.5, 4.5),
    (None, 2.0, 3.0),
    (1.0, 0.5, 4.75),
])
async def test_the_call_deadline_leaves_room_for_the_whole_kill_cascade(
        autojump_clock: MockClock, io_timeout: float | None, kill_grace: float,
        sigterm_at: float) -> None:
    ran = await run_call(chatty(0.35, ignore_term=True), io_timeout=io_timeout,
                         kill_grace=kill_grace, deadline=5.0)
    assert ran.signals == [(exactly(sigterm_at), "group", SIGTERM),
                           (exactly(5.0), "group", SIGKILL)]
    assert ran.reason == Reason.TIMEOUT
    assert "did not answer within the time" in ran.detail
    assert ran.ended == exactly(5.0)


# -- a time limit: the cascade starts when it runs out -----------------------------------

LIMIT = TimeLimit(3.0, "its 1 s measurement window and the 2 s window_grace")


@pytest.mark.parametrize("kill_grace", [0.5, 5.0])
async def test_a_time_limit_starts_the_cascade_when_it_runs_out_never_sooner(
        autojump_clock: MockClock, kill_grace: float) -> None:
    ran = await run_call(chatty(0.35, ignore_term=True), io_timeout=None,
                         kill_grace=kill_grace, limit=LIMIT)
    assert ran.signals == [(exactly(3.0), "group", SIGTERM),
                           (exactly(3.0 + kill_grace), "group", SIGKILL)]
    assert ran.reason == Reason.TIMEOUT
    assert ran.detail == ("ran 3.0 s, past its 1 s measurement window and the 2 s "
                          "window_grace; killed")


async def test_a_time_limit_counts_from_a_head_starts_real_start(
        autojump_clock: MockClock) -> None:
    async with open_fake_spawner() as spawner:
        proc = spawner.head_start(fake_spec(NAME), hangs_deaf_to_sigterm)
        await trio.sleep(1.0)  # the supervised call takes it over 1 s after its start
        outcome = await Supervisor(SupervisionPolicy(None, 0.5, 3.0), spawner).call(
            fake_spec(NAME), limit=LIMIT)
    assert proc.signals[0] == (exactly(3.0), "group", SIGTERM)
    assert outcome.problem is not None and outcome.problem.detail.startswith("ran 3.0 s,")


@pytest.mark.parametrize(("deadline", "limit", "sigterm_at", "says"), [
    (5.0, 10.0, 4.5, "did not answer within the time"),  # the answer deadline first
    (5.0, 2.0, 2.0, "ran 2.0 s, past"),  # the limit first
])
async def test_of_a_deadline_and_a_time_limit_the_first_ends_the_call_and_is_named(
        autojump_clock: MockClock, deadline: float, limit: float, sigterm_at: float,
        says: str) -> None:
    ran = await run_call(hangs_deaf_to_sigterm, io_timeout=None, deadline=deadline,
                         limit=TimeLimit(limit, "its deadline"))
    assert ran.signals[0] == (exactly(sigterm_at), "group", SIGTERM)
    assert ran.reason == Reason.TIMEOUT and ran.detail.startswith(says)


async def test_a_driver_stuck_in_the_kernel_holds_the_call_at_most_the_reap_limit(
        autojump_clock: MockClock) -> None:
    async def stuck(p: FakeMember) -> None:
        await p.in_kernel(60.0)

    async with open_fake_spawner() as spawner:
        spawner.script(NAME, stuck)
        spawner.check_on_exit = False  # it cannot be reaped: it outlives the call
        outcome = await Supervisor(SupervisionPolicy(10.0, 0.5, 3.0), spawner).call(
            fake_spec(NAME))
        ended = trio.current_time()
        proc = spawner.process(NAME)
    assert proc.signals == [(exactly(9.0), "group", SIGTERM), (exactly(9.5), "group", SIGKILL)]
    assert ended == exactly(9.5 + REAP_LIMIT_SECONDS)
    assert outcome.exit_code is None
    assert outcome.problem is not None and outcome.problem.reason == Reason.TIMEOUT
    assert proc.pipes_closed


# -- what the driver says ------------------------------------------------------------------

@pytest.mark.parametrize(("line", "says"), [
    (b"not json\n", "not JSON"),
    (b'{"a": 1} {"b": 2}\n', "not JSON"),
    (b"\xff\xfe{}\n", "not JSON"),
    (b"[1, 2]\n", "not an object"),
    (b"null\n", "not an object"),
    (b"x" * (MAX_LINE_BYTES + 1), "line longer than"),  # no newline, the driver runs on
], ids=["text", "two-objects", "not-utf8", "array", "null", "over-the-cap"])
async def test_bad_output_kills_the_driver_at_once(autojump_clock: MockClock, line: bytes,
                                                   says: str) -> None:
    async def garbles(p: FakeMember) -> None:
        await p.say({"progress": 1})
        await trio.sleep(1.0)
        await p.write(line)
        await trio.sleep_forever()

    ran = await run_call(garbles, io_timeout=10.0)
    assert ran.reason == Reason.BAD_OUTPUT
    assert says in ran.detail
    assert ran.signals == [(exactly(1.0), "group", SIGTERM), (exactly(1.0), "group", SIGKILL)]
    assert ran.outcome.exit_code == -SIGTERM


async def test_progress_lines_reach_on_progress_as_they_come_and_the_last_other_line_is_the_result(
        autojump_clock: MockClock) -> None:
    request = b'{"state": {"application": {}}}\n'
    seen: list[tuple[float, dict[str, Any]]] = []

    async def reports(p: FakeMember) -> None:
        assert await p.read_request() == request
        script: list[tuple[float, dict[str, Any]]] = [
            (1.0, {"progress": 10}), (2.0, {"progress": 50, "message": "x"}),
            (3.0, {"status": "ok", "n": 1}), (3.5, {"progress": 90}),
            (4.0, {"status": "ok", "n": 2})]
        for when, message in script:
            await trio.sleep_until(when)
            await p.say(message)
        await p.write("\n  \n")  # blank lines carry nothing
        await trio.sleep(0.5)
        await p.complain("done\n")

    ran = await run_call(reports, on_progress=lambda m: seen.append((trio.current_time(), m)),
                         stdin=request)
    assert seen == [(exactly(1.0), {"progress": 10}),
                    (exactly(2.0), {"progress": 50, "message": "x"}),
                    (exactly(3.5), {"progress": 90})]
    assert ran.outcome.result == {"status": "ok", "n": 2}
    assert ran.outcome.problem is None
    assert ran.outcome.stderr.text() == "done\n"
    assert ran.proc.request == request
    assert ran.ended == exactly(4.5)


async def test_blank_lines_are_a_sign_of_life(autojump_clock: MockClock) -> None:
    """servo's rule: any byte is life, blank lines included (servo skips them). The driver
    is kept; that servo hears us meanwhile is the heartbeat's job (test_heartbeat.py)."""
    lives: list[float] = []

    async def blank(p: FakeMember) -> int:
        for _ in range(6):
            await trio.sleep(5.0)
            await p.write("\n")
        await p.say({"status": "ok", "reason": "success"})
        return 0

    ran = await run_call(blank, io_timeout=10.0, on_life=lambda: lives.append(
        trio.current_time()))
    assert ran.reason is None and ran.outcome.exit_code == 0
    assert SIGTERM not in [sig for _, _, sig in ran.signals]  # never stopped
    assert sorted({round(t, 6) for t in lives})[:6] == [5.0, 10.0, 15.0, 20.0, 25.0, 30.0]


# -- keep-alive between calls (the real --query over fake drivers) -------------------------

def _descriptor(component: str) -> dict[str, Any]:
    return {"application": {"components": {component: {"settings": {
        "replicas": {"type": "range", "min": 1, "max": 4, "step": 1, "value": 2}}}}}}


async def _query(drivers: dict[str, Script], io_timeout: float = 10.0, *,
                 command: Command = Command.QUERY, silent_since: float = 0.0) -> RecordingOutput:
    """The real --query (or --version) over fake drivers; servo last heard from us at
    `silent_since` (our own start, before trio time 0)."""
    assert trio.current_time() == 0
    output = RecordingOutput()
    output.last_write = silent_since
    with trio.fail_after(TRIO_TIME_BOUND):
        await _run_query(output, drivers, io_timeout, command)
    return output


async def _run_query(output: RecordingOutput, drivers: dict[str, Script],
                     io_timeout: float, command: Command) -> None:
    async with open_fake_spawner() as spawner:
        for name, script in drivers.items():
            spawner.script(name, script)
        session = Session(Supervisor(SupervisionPolicy(io_timeout, 0.5, 3.0), spawner),
                          output, ServoEnvironment(io_timeout, "all"))
        job = AdjustJob(command, "app", AggregatorConfig(),
                        tuple(fake_spec(name).driver for name in drivers))
        async with trio.open_nursery() as nursery:
            if session.liveness is not None:  # as the Run runs it
                nursery.start_soon(session.liveness.run)
            await (version if command is Command.VERSION else query)(job, session)
            nursery.cancel_scope.cancel()


def answers_after(seconds: float, component: str) -> Script:
    async def script(p: FakeMember) -> None:
        await trio.sleep(seconds)
        await p.say(_descriptor(component))
    return script


async def test_a_keepalive_goes_out_between_queries_when_the_next_could_outlast_servo(
        autojump_clock: MockClock) -> None:
    output = await _query({"10a": answers_after(8.5, "a"), "20b": answers_after(8.5, "b"),
                           "30c": answers_after(8.5, "c")})
    assert [(t, json.loads(text).get("message")) for t, text in output.lines] == [
        (exactly(8.5), "queried 1 of 3 drivers"),
        (exactly(17.0), "queried 2 of 3 drivers"),
        (exactly(25.5), None),  # the merged descriptor: no heartbeat for a finished call
    ]
    assert set(json.loads(output.lines[-1][1])["application"]["components"]) == {"a", "b", "c"}


async def test_no_keepalive_while_there_is_time_left(autojump_clock: MockClock) -> None:
    """After 0.1 s of silence, the worst next call (9 + 0.5 + 0.25 s) still ends before T."""
    output = await _query({"10a": answers_after(0.05, "a"), "20b": answers_after(0.05, "b"),
                           "30c": answers_after(0.05, "c")})
    assert [t for t, _ in output.lines] == [exactly(0.15)]


async def test_servo_never_waits_t_for_a_line_however_the_queries_fail(
        autojump_clock: MockClock) -> None:
    output = await _query({"10a": hangs_deaf_to_sigterm, "20b": answers_after(8.9, "b"),
                           "30c": hangs_deaf_to_sigterm})
    assert [t for t, _ in output.lines] == [exactly(9.5), exactly(18.4), exactly(27.9)]
    assert max(output.gaps()) < 10.0
    assert json.loads(output.lines[-1][1])["reason"] == Reason.TIMEOUT


async def test_a_query_driver_reporting_progress_does_not_leave_servo_without_a_line(
        autojump_clock: MockClock) -> None:
    async def slow_query(p: FakeMember) -> None:
        for _ in range(6):
            await p.say({"progress": 1, "message": "discovering"})
            await trio.sleep(5.0)
        await p.say(_descriptor("a"))

    output = await _query({"10a": slow_query})
    assert max(output.gaps()) < 10.0


async def test_version_answers_half_a_second_before_servos_timeout_with_a_driver_hanging(
        autojump_clock: MockClock) -> None:
    """One line, no keep-alive possible: every --info shares one budget that ends 0.5 s
    before servo's timeout (T from our start, 0.2 s before trio time 0), cascade included,
    and the hanging driver is killed alone while the other answers."""
    async def info(p: FakeMember) -> None:
        await trio.sleep(0.1)
        await p.say({"version": "1.2"})

    output = await _query({"10a": info, "20b": hangs_deaf_to_sigterm}, command=Command.VERSION,
                          silent_since=-0.2)
    [(written, line)] = output.lines
    assert written == exactly(10.0 - 0.2 - 0.5)
    assert line.endswith("(10a 1.2, 20b: failing)")


# -- progress at a rate servo can afford (the real adjust over fake drivers) ----------------

def floods(component: str, lines: int, every: float) -> Script:
    """--query: its descriptor; adjust: `lines` distinct progress lines, one per `every` s."""
    async def script(p: FakeMember) -> None:
        if p.proc.spec.call is Call.QUERY:
            await p.say(_descriptor(component))
            return
        await p.read_request()
        for i in range(lines):
            await p.say({"progress": i * 100 // lines, "message": f"step {i}"})
            await trio.sleep(every)
        await p.say(OK)
    return script


async def test_an_adjust_flood_reaches_servo_once_per_interval_and_never_after_the_final(
        autojump_clock: MockClock) -> None:
    drivers = {"10a": floods("a", 1000, 0.001), "20b": floods("b", 5, 0.001),
               "30c": floods("c", 1000, 0.001)}
    request = {"application": {"components": {c: {"settings": {"replicas": {"value": 3}}}
                                              for c in "abc"}}}
    output = RecordingOutput()
    async with open_fake_spawner() as spawner:
        for name, script in drivers.items():
            spawner.script(name, script)
        session = Session(Supervisor(SupervisionPolicy(10.0, 0.5, 3.0), spawner),
                          output, ServoEnvironment(10.0, "all"))
        job = AdjustJob(Command.ADJUST, "app", AggregatorConfig(),
                        tuple(fake_spec(name).driver for name in drivers),
                        parse_request(json.dumps(request).encode()))
        with trio.fail_after(TRIO_TIME_BOUND):
            async with trio.open_nursery() as nursery:
                if session.liveness is not None:
                    nursery.start_soon(session.liveness.run)
                code = await adjust(job, session)
                nursery.cancel_scope.cancel()
    assert code == 0
    lines = [json.loads(text) for _, text in output.lines]
    assert lines[-1] == {"status": "ok", "reason": "success"}  # the final line is last
    assert all("progress" in line for line in lines[:-1])
    messages = [line["message"] for line in lines[:-1]]
    for name in drivers:  # each driver's first line and its done, however quick it was
        assert f"{name}: step 0" in messages and f"{name}: done" in messages
    assert messages[-1] == "30c: done" and lines[-2]["progress"] == 100
    times = sorted({t for t, text in output.lines if "progress" in text})
    # The last write (the relay closing, the command's final line due) is never held back.
    assert times[-1] == output.lines[-1][0]
    assert all(b - a >= 0.25 - 1e-9 for a, b in itertools.pairwise(times[:-1]))
    assert len(lines) < 20  # ~2 s of floods: ~8 intervals, not 2,005 lines


# -- progress during the queries before an adjust (#14.1) ------------------------------------

def reports_while_querying(component: str, reports: int = 6, every: float = 0.5) -> Script:
    """--query: a progress line (its own 50 %) every `every` s, then its descriptor;
    adjust: ok at once."""
    async def script(p: FakeMember) -> None:
        if p.proc.spec.call is Call.QUERY:
            for i in range(reports):
                await p.say({"progress": 50, "message": f"discovering {i}"})
                await trio.sleep(every)
            await p.say(_descriptor(component))
            return
        await p.read_request()
        await p.say(OK)
    return script


async def _run_job(command: Command, drivers: dict[str, Script], root: Any) -> RecordingOutput:
    """An adjust-front-end command as servo or an operator runs it, over fake drivers."""
    from aggregator.adjust.commands import run_job

    request = {"application": {"components": {"a": {"settings": {"replicas": {"value": 3}}}}}}
    output = RecordingOutput()
    async with open_fake_spawner() as spawner:
        for name, script in drivers.items():
            spawner.script(name, script)
        session = Session(Supervisor(SupervisionPolicy(10.0, 0.5, 3.0), spawner),
                          output, ServoEnvironment(10.0, "all"))
        job = AdjustJob(command, "app", AggregatorConfig(),
                        tuple(fake_spec(name).driver for name in drivers),
                        None if command is Command.QUERY
                        else parse_request(json.dumps(request).encode()))
        with trio.fail_after(TRIO_TIME_BOUND):
            async with trio.open_nursery() as nursery:
                if session.liveness is not None:
                    nursery.start_soon(session.liveness.run)
                await run_job(job, session, root)
                nursery.cancel_scope.cancel()
    return output


async def test_progress_a_query_prints_before_an_adjust_reaches_servo_within_an_interval(
        autojump_clock: MockClock, tmp_path: Any) -> None:
    """servo posts each line, and the optimizer's cancel comes back only in the reply: a
    long survey must give it its chances, at the current percentage (0: nothing changed
    yet), each driver report within one progress_interval."""
    output = await _run_job(Command.ADJUST, {"10a": reports_while_querying("a"),
                                             "20b": answers_after(0.1, "b")}, tmp_path)
    relayed = [(t, json.loads(text)) for t, text in output.lines]
    for i in range(6):
        said = [(t, m["progress"]) for t, m in relayed
                if m.get("message") == f"10a: discovering {i}"]
        assert said and said[0][1] == 0 and 0.5 * i <= said[0][0] <= 0.5 * i + 0.25, said
    assert relayed[-1][1] == OK
    assert [m["message"] for _, m in relayed if "progress" in m][-1] == "10a: done"


@pytest.mark.parametrize("command", [Command.QUERY, Command.DRY_RUN])
async def test_a_query_or_a_rehearsal_relays_no_progress(
        autojump_clock: MockClock, tmp_path: Any, command: Command) -> None:
    """--query's answer is one JSON document, and nobody posts --dry-run's lines."""
    output = await _run_job(command, {"10a": reports_while_querying("a")}, tmp_path)
    assert output.lines
    assert not any('"progress"' in text for _, text in output.lines), output.lines
    if command is Command.QUERY:
        assert len(output.lines) == 1


# -- the orphan sweep and the calls that start meanwhile ------------------------------------

class RecordingSweeper(OrphanSweeper):
    """The orphan sweep as supervision calls it, over a FakeSpawner: each sweep records the
    drivers it would take for orphans (alive, unreaped, not kept) as it starts and as it
    ends (a real sweep looks again in each round, and a round waits for the kills)."""

    def __init__(self, spawner: FakeSpawner) -> None:
        super().__init__()
        self.spawner = spawner
        self.took: list[tuple[float, list[str]]] = []

    def _alive(self, keep: Collection[int]) -> list[str]:
        return [p.spec.driver.name for p in self.spawner.started
                if not p.reaped and p.pid not in keep]

    async def sweep(self, keep: Collection[int] = ()) -> None:
        self.took.append((trio.current_time(), self._alive(keep)))
        await trio.sleep(0.1)
        self.took.append((trio.current_time(), self._alive(keep)))


async def says_ok(p: FakeMember) -> None:
    await p.say(OK)


async def test_a_driver_forked_but_not_yet_attached_is_no_orphan(
        autojump_clock: MockClock) -> None:
    """60 --info calls under `ulimit -n 96` run in turns: one turn's last call ended while
    the next driver was forked but not yet held by its call, and the sweep killed it (it
    then "exited 0 without printing a result line"). No sweep while a call is starting;
    the last call's end sweeps."""
    async with open_fake_spawner() as spawner:
        for name in ("10fast", "20slow"):
            spawner.script(name, says_ok)
        spawner.after_fork_seconds["20slow"] = 1.0
        sweeper = RecordingSweeper(spawner)
        supervisor = Supervisor(SupervisionPolicy(10.0, 0.5, 3.0), spawner, sweeper=sweeper)
        with trio.fail_after(TRIO_TIME_BOUND):
            outcomes = await supervisor.call_all(
                [fake_spec("10fast", Call.INFO), fake_spec("20slow", Call.INFO)], parallel=True)
    assert [o.result for o in outcomes] == [OK, OK]
    assert [(at, took) for at, took in sweeper.took] == [(exactly(1.0), []),
                                                         (exactly(1.1), [])]


async def test_no_driver_is_started_while_a_sweep_runs(autojump_clock: MockClock) -> None:
    """A call that comes while the sweep of its sibling's end goes on (its rounds wait for
    the orphans' deaths) starts once the sweep is over: else the next round takes it."""
    async with open_fake_spawner() as spawner:
        for name in ("10first", "20next"):
            spawner.script(name, says_ok)
        sweeper = RecordingSweeper(spawner)
        supervisor = Supervisor(SupervisionPolicy(10.0, 0.5, 3.0), spawner, sweeper=sweeper)

        async def later() -> None:
            await trio.sleep(0.05)  # the first call's sweep runs from 0 to 0.1
            await supervisor.call(fake_spec("20next", Call.INFO))

        with trio.fail_after(TRIO_TIME_BOUND):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(later)
                await supervisor.call(fake_spec("10first", Call.INFO))
    assert all(took == [] for _, took in sweeper.took), sweeper.took
    assert spawner.process("20next").started_at == exactly(0.1)


async def test_a_start_that_fails_sweeps_what_a_sibling_left_meanwhile(
        autojump_clock: MockClock) -> None:
    """The sibling that ended while it was starting did not sweep: its end does, being
    the moment no call is left running."""
    async with open_fake_spawner() as spawner:
        spawner.script("10fast", says_ok)
        spawner.fail("20gone", FileNotFoundError(2, "No such file or directory"))
        spawner.after_fork_seconds["20gone"] = 1.0
        sweeper = RecordingSweeper(spawner)
        supervisor = Supervisor(SupervisionPolicy(10.0, 0.5, 3.0), spawner, sweeper=sweeper)
        with trio.fail_after(TRIO_TIME_BOUND):
            outcomes = await supervisor.call_all(
                [fake_spec("10fast", Call.INFO), fake_spec("20gone", Call.INFO)], parallel=True)
    assert outcomes[0].result == OK
    assert outcomes[1].problem is not None and outcomes[1].problem.reason == Reason.SPAWN_FAILED
    assert [at for at, _ in sweeper.took] == [exactly(1.0), exactly(1.1)]
