"""servo's patience, on trio's MockClock. Transparent liveness: a line is repeated after
T/2 of our silence only when the driver showed life since our last line, never while it
is silent; and a one-line answer is bounded even without a timeout."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from aggregator.limits import UNTIMED_ANSWER_LIMIT_SECONDS
from aggregator.protocol.environment import ServoEnvironment
from aggregator.supervision.call import SupervisionPolicy, Supervisor
from aggregator.supervision.heartbeat import Heartbeat
from aggregator.supervision.output import Output
from aggregator.supervision.session import Session
from aggregator.supervision.spawner import DriverSpawner

pytestmark = pytest.mark.supervision


class Recorder:
    def __init__(self, output: Output) -> None:
        self.output = output
        self.at: list[float] = []

    def repeat(self, driver: str) -> None:
        self.at.append(trio.current_time())
        self.output.write_line(f'{{"progress": 0, "message": "{driver}"}}')


@pytest.fixture
async def output() -> AsyncIterator[Output]:
    """servo's channel, written to /dev/null, on trio's (mock) clock."""
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        yield Output(fd, io.StringIO(), clock=trio.current_time)
    finally:
        os.close(fd)


async def test_life_without_lines_is_relayed_after_half_the_timeout(
        autojump_clock: trio.testing.MockClock, output: Output) -> None:
    output.write_line("{}")  # at t0
    start = trio.current_time()
    recorder = Recorder(output)
    beat = Heartbeat(output, 1.5, recorder.repeat)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(beat.run)
        for _ in range(6):  # a blank line every second for 6 s: nothing new to relay
            await trio.sleep(1)
            beat.life("02fault")
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    gaps = [round(t - start, 6) for t in recorder.at]
    assert gaps == [1.5, 3.0, 4.5, 6.0], gaps  # every T/2 while alive, then nothing
    assert beat.repeated == 4


async def test_a_silent_driver_is_never_covered_for(
        autojump_clock: trio.testing.MockClock, output: Output) -> None:
    recorder = Recorder(output)
    beat = Heartbeat(output, 1.5, recorder.repeat)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(beat.run)
        beat.life("02fault")
        output.write_line("{}")  # its line was relayed: servo heard that life already
        await trio.sleep(60)  # then silence
        nursery.cancel_scope.cancel()
    assert recorder.at == []


async def test_our_own_lines_restart_the_count(autojump_clock: trio.testing.MockClock,
                                               output: Output) -> None:
    output.write_line("{}")
    start = trio.current_time()
    recorder = Recorder(output)
    beat = Heartbeat(output, 1.5, recorder.repeat)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(beat.run)
        beat.life("02fault")
        await trio.sleep(1)
        output.write_line("{}")  # we spoke at 1.0: the repeat is due at 2.5, if any life
        await trio.sleep(0.2)
        beat.life("02fault")
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert [round(t - start, 6) for t in recorder.at] == [2.5]


async def test_a_one_line_answer_without_a_timeout_is_still_bounded(
        autojump_clock: trio.testing.MockClock, output: Output) -> None:
    """--version without OPTUNE_IO_TIMEOUT: the drivers' --info share a default budget."""
    supervisor = Supervisor(SupervisionPolicy(None, 0.5, 1.0),
                            DriverSpawner(Path("/nonexistent"), {}))
    session = Session(supervisor, output, ServoEnvironment(None, "all"))
    assert session.answer_deadline() == trio.current_time() + UNTIMED_ANSWER_LIMIT_SECONDS
