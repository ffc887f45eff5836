"""servo's end of stdout never stops supervision: a servo that does not read, a full or
non-blocking stdout, or one whose reader is gone. On trio's MockClock with fake drivers,
through the Run's trio side, on real pipes (no process is started)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from aggregator.limits import FINAL_WRITE_SECONDS
from aggregator.protocol.environment import ServoEnvironment
from aggregator.supervision.output import Output, ServoProcess, own_description
from aggregator.supervision.run import Command, Run
from aggregator.supervision.session import RunStopped, Session, write_stopped
from aggregator.supervision.signals import deliver
from tests.fakes import (
    FakeMember,
    FakeSpawner,
    Script,
    fake_spec,
    hangs,
    hangs_deaf_to_sigterm,
    open_fake_spawner,
)
from tests.streams import full_pipe

T = 3.0  # OPTUNE_IO_TIMEOUT: a driver gets T-1 = 2 s per line, then the kill cascade


class Pipe:
    """servo's end (`r`) and ours (`w`) of a stdout pipe, filled up so that no line fits."""

    def __init__(self, *, blocking: bool = True) -> None:
        self.r, self.w, self.junk = full_pipe(blocking=blocking)
        os.set_blocking(self.r, False)

    def read(self) -> bytes:
        """What servo reads when it reads again (the junk it had not read yet cut off)."""
        data = bytearray()
        while True:
            try:
                chunk = os.read(self.r, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        skip = min(self.junk, len(data))
        self.junk -= skip
        return bytes(data[skip:])

    def read_lines(self) -> list[str]:
        return self.read().decode().splitlines()

    def close(self) -> None:
        for fd in (self.r, self.w):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    p = Pipe()
    yield p
    p.close()


def run_for(output: Output, timeout: float | None = T) -> Run:
    return Run(servo_root=Path("/nonexistent"), env={},
               environment=ServoEnvironment(timeout, "all"), kill_grace=0.5,
               cancel_grace=1.0, output=output, heartbeat=False)


@pytest.fixture
async def spawner() -> AsyncIterator[FakeSpawner]:
    async with open_fake_spawner() as fakes:
        yield fakes


async def says_ok(p: FakeMember) -> None:
    await trio.sleep(0.1)
    await p.say({"status": "ok"})


def signals_of(spawner: FakeSpawner) -> list[int]:
    """The signals supervision sent the one driver process, in order."""
    return [sig for _, _, sig in spawner.started[0].signals]


def one_call(spawner: FakeSpawner, script: Script, stamps: dict[str, float]) -> Command:
    """A command like an adjust of one driver: a progress line, the call, the final line
    (the stopped-run line if servo stopped it)."""
    spawner.script("02fault", script)

    async def command(session: Session) -> int:
        stamps["start"] = trio.current_time()
        session.output.json_line({"progress": 0, "message": "02fault: starting"})
        outcome = await session.call(fake_spec("02fault"))
        stamps["ended"] = trio.current_time()
        session.stop_if_stopping("02fault")
        problem = outcome.problem
        session.output.json_line({"status": "failed", "reason": problem.reason if problem
                                  else "none", "message": "x" * 200_000})
        return 1

    return command


@pytest.mark.supervision
@pytest.mark.parametrize("blocking", [True, False])  # servo's stdout as it was given to us
async def test_a_stuck_driver_is_killed_at_t_minus_1_while_servo_does_not_read(
        autojump_clock: trio.testing.MockClock, spawner: FakeSpawner, blocking: bool
) -> None:
    """Before: the first line blocked in os.write on the trio thread (or raised
    BlockingIOError on a non-blocking stdout); the driver was never killed."""
    pipe = Pipe(blocking=blocking)
    output = Output(pipe.w, io.StringIO(), clock=trio.current_time)
    stamps: dict[str, float] = {}
    command = one_call(spawner, hangs_deaf_to_sigterm, stamps)
    got: list[int] = []

    async def servo_reads_again_after(delay: float, data: bytearray) -> None:
        await trio.sleep(delay)
        while not got:
            data += pipe.read()
            await trio.sleep(0.01)
        data += pipe.read()

    data = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(servo_reads_again_after, 5.0, data)
        got.append(await run_for(output).supervised(command, spawner))
    lines = data.decode().splitlines()
    assert stamps["ended"] - stamps["start"] == pytest.approx(2.0 + 0.5, abs=0.01)
    assert signals_of(spawner) == [signal.SIGTERM, signal.SIGKILL]
    assert [json.loads(line)["progress"] for line in lines[:1]] == [0]
    assert json.loads(lines[1])["reason"] == "timeout"  # whole, in order, once servo read
    assert len(lines) == 2
    output.close()
    assert os.get_blocking(pipe.w) is blocking  # servo's flags are given back
    pipe.close()


@pytest.mark.supervision
async def test_servos_sigterm_works_while_stdout_is_full(
        autojump_clock: trio.testing.MockClock, spawner: FakeSpawner, pipe: Pipe) -> None:
    output = Output(pipe.w, io.StringIO(), clock=trio.current_time)
    stamps: dict[str, float] = {}
    command = one_call(spawner, hangs, stamps)
    run = run_for(output, timeout=None)  # no line limit: only the signal ends the driver

    async def wrapped(session: Session) -> int:
        async def sigterm_later() -> None:
            await trio.sleep(1.0)
            deliver(signal.SIGTERM, session.control)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sigterm_later)
            try:
                return await command(session)
            except RunStopped as stop:
                return write_stopped(session, stop)

    with trio.fail_after(60):
        code = await run.supervised(wrapped, spawner)  # never reading: the flush gives up
    assert code == 128 + signal.SIGTERM
    assert stamps["ended"] - stamps["start"] == pytest.approx(1.0, abs=0.01)
    assert signals_of(spawner)[0] == signal.SIGTERM  # the kill cascade
    assert output.lost is not None and "did not read" in output.lost


@pytest.mark.supervision
async def test_a_servo_that_never_reads_holds_the_end_for_the_bound_only(
        autojump_clock: trio.testing.MockClock, spawner: FakeSpawner, pipe: Pipe) -> None:
    notes = io.StringIO()
    output = Output(pipe.w, notes, clock=trio.current_time)
    stamps: dict[str, float] = {}
    command = one_call(spawner, says_ok, stamps)
    code = await run_for(output).supervised(command, spawner)
    assert code == 1
    assert trio.current_time() - stamps["ended"] == pytest.approx(FINAL_WRITE_SECONDS,
                                                                  abs=0.01)
    assert output.lost == (f"servo did not read the last lines of stdout in time "
                           f"({FINAL_WRITE_SECONDS:g} s)")
    stderr = notes.getvalue()
    assert "nothing more reaches servo (2 lines not written)" in stderr
    output.write_line("after the run")  # a write after the bound does not wait again
    assert output.patience_left <= 0


@pytest.mark.supervision
async def test_when_servos_end_of_stdout_closes_the_run_stops_as_on_sigterm(
        autojump_clock: trio.testing.MockClock, spawner: FakeSpawner) -> None:
    """Noticed while every driver is silent and nothing is written (no line limit)."""
    r, w = os.pipe()
    notes = io.StringIO()
    output = Output(w, notes, clock=trio.current_time)
    stamps: dict[str, float] = {}
    command = one_call(spawner, hangs, stamps)

    async def wrapped(session: Session) -> int:
        async def servo_goes_away() -> None:
            await trio.sleep(4.0)
            os.close(r)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(servo_goes_away)
            try:
                return await command(session)
            except RunStopped as stop:
                return write_stopped(session, stop)

    with trio.fail_after(60):  # (mock time) a driver without a line limit hangs forever
        code = await run_for(output, timeout=None).supervised(wrapped, spawner)
    os.close(w)
    assert code == 128 + signal.SIGPIPE
    assert stamps["ended"] - stamps["start"] == pytest.approx(4.0, abs=0.01)
    assert signals_of(spawner)[0] == signal.SIGTERM  # the kill cascade
    stderr = notes.getvalue()
    assert "servo-agg stopped because servo's end of stdout was closed while 02fault " \
           "was running; the driver was stopped and no further driver was started" in stderr
    assert "Traceback" not in stderr


@pytest.mark.supervision
async def test_epipe_on_a_write_stops_the_run_too(
        autojump_clock: trio.testing.MockClock, spawner: FakeSpawner) -> None:
    r, w = os.pipe()
    os.close(r)
    output = Output(w, io.StringIO(), clock=trio.current_time)
    stamps: dict[str, float] = {}
    command = one_call(spawner, hangs, stamps)

    async def wrapped(session: Session) -> int:
        try:
            return await command(session)
        except RunStopped as stop:
            return write_stopped(session, stop)

    with trio.fail_after(60):
        code = await run_for(output, timeout=None).supervised(wrapped, spawner)
    os.close(w)
    assert code == 128 + signal.SIGPIPE
    assert spawner.started == [] or signals_of(spawner)[0] == signal.SIGTERM
    assert output.lost in ("servo's end of stdout was closed (EPIPE)",
                           "servo's end of stdout was closed")


# -- the queue, and the file description --------------------------------------------------

@pytest.mark.unit
def test_while_stdout_is_full_only_the_newest_progress_line_waits(pipe: Pipe) -> None:
    output = Output(pipe.w, io.StringIO())
    woken: list[int] = []
    gone: list[str] = []
    output.attach(lambda: woken.append(1), gone.append)
    output.json_line({"progress": 1, "message": "first"})
    output.json_line({"status": "ok", "reason": "a result so far"})  # never dropped
    for i in range(2, 100):
        output.json_line({"progress": i, "message": f"line {i}"})
    output.write_line("text line")
    output.json_line({"progress": 100, "message": "newest"})
    assert output.superseded == 99  # the first one too: stdout took nothing of it
    pipe.read_lines()
    output.detach()  # what waits is written the plain way, in order, once there is room
    assert [json.loads(line) if line.startswith("{") else line
            for line in pipe.read_lines()] == [
        {"status": "ok", "reason": "a result so far"}, "text line",
        {"progress": 100, "message": "newest"}]
    assert gone == [] and woken


@pytest.mark.unit
def test_a_line_stdout_takes_in_part_is_finished_whole_never_superseded(pipe: Pipe) -> None:
    output = Output(pipe.w, io.StringIO())
    output.attach(lambda: None, lambda why: None)
    pipe.read_lines()  # room for 64 KiB
    output.json_line({"progress": 1, "message": "m" * 100_000})  # more than fits
    output.json_line({"progress": 2, "message": "newer"})
    async_free = bytearray(pipe.read())  # servo reads what went out of the first line
    output.detach()  # the rest of it, then the newer one: written the plain way
    async_free += pipe.read()
    assert [json.loads(line)["progress"] for line in async_free.decode().splitlines()] == [
        1, 2]


@pytest.mark.unit
def test_own_description_is_a_new_file_description_of_the_same_pipe() -> None:
    r, w = os.pipe()
    try:
        fd, owned = own_description(w)
        assert owned and fd != w
        assert os.get_blocking(w) and not os.get_blocking(fd)  # servo's flags untouched
        os.write(fd, b"through ours\n")
        assert os.read(r, 100) == b"through ours\n"
        os.close(fd)
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.unit
def test_a_regular_file_is_written_as_it_is(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        assert own_description(fd) == (fd, False)  # reopening would write from offset 0
    finally:
        os.close(fd)


# -- servo itself ---------------------------------------------------------------------------

@pytest.mark.supervision
@pytest.mark.parametrize("gone_at_start", [False, True])
async def test_when_servo_exits_the_run_stops_though_the_driver_is_silent(
        autojump_clock: trio.testing.MockClock, spawner: FakeSpawner, gone_at_start: bool
) -> None:
    """servo's pidfd is readable once it exited (here a pipe stands in for it); servo may
    also be gone before the watch was set up (its pid then is someone else's)."""
    exited_r, exited_w = os.pipe()
    out_r, out_w = os.pipe()
    notes = io.StringIO()
    servo = ServoProcess(4242, None if gone_at_start else exited_r, gone=gone_at_start)
    output = Output(out_w, notes, clock=trio.current_time, servo=servo)
    stamps: dict[str, float] = {}
    command = one_call(spawner, hangs, stamps)

    async def wrapped(session: Session) -> int:
        async def servo_exits() -> None:
            await trio.sleep(4.0)
            os.write(exited_w, b"x")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(servo_exits)
            try:
                return await command(session)
            except RunStopped as stop:
                return write_stopped(session, stop)

    with trio.fail_after(60):  # (mock time) no line limit: it would hang forever
        code = await run_for(output, timeout=None).supervised(wrapped, spawner)
    assert code == 128 + signal.SIGHUP
    if gone_at_start:
        assert spawner.started == []  # not even started: servo was gone already
    else:
        assert stamps["ended"] - stamps["start"] == pytest.approx(4.0, abs=0.01)
        assert signals_of(spawner)[0] == signal.SIGTERM
    final = json.loads(os.read(out_r, 1 << 16).decode().splitlines()[-1])
    assert final["message"].startswith("servo-agg stopped because servo (pid 4242) exited")
    assert output.lost is None  # someone may still read stdout: it is written on
    for fd in (exited_r, exited_w, out_r, out_w):
        os.close(fd)


@pytest.mark.unit
def test_no_servo_is_watched_where_our_parent_is_init() -> None:
    assert ServoProcess.watch(1) is None
    assert ServoProcess.watch(0) is None


@pytest.mark.unit
def test_a_parent_that_is_not_ours_any_more_is_gone() -> None:
    """getppid() changes on the parent's death: a pid that is not our parent now is a
    servo that exited before the watch was taken (whoever has its pid now)."""
    me = ServoProcess.watch(os.getpid())  # alive, but not our parent
    assert me is not None and me.gone and me.pidfd is None
    parent = ServoProcess.watch(os.getppid())
    assert parent is not None and not parent.gone and parent.pidfd is not None
    parent.close()
