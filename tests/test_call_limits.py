"""Supervision within the process's limits, on fake processes: a descriptor answers with a
line far over the progress cap, in memory of about twice its size, while progress
stays capped; and parallel calls run only as many at once as descriptors allow.

Its FakeProcess is its own, not tests.fakes': its stdout is a generated stream
(tests.streams) that makes hundreds of MiB without holding them, so the peak memory
measured is supervision's alone; the general fakes write through in-memory pipes."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from aggregator.limits import MAX_LINE_BYTES, MAX_RESULT_LINE_BYTES
from aggregator.process.call_limits import LimitHits
from aggregator.protocol.vocabulary import Call, Reason
from aggregator.root.discovery import Driver
from aggregator.supervision import call as call_module
from aggregator.supervision.call import SupervisionPolicy, Supervisor, line_cap
from aggregator.supervision.spawner import SupervisedProcess
from aggregator.supervision.spec import CallSpec
from tests.streams import RepeatingStream, peak_memory

pytestmark = pytest.mark.supervision


class _Sink(trio.abc.SendStream):
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class _Written(trio.abc.ReceiveStream):
    """A stream that says when it has all been read."""

    def __init__(self, inner: trio.abc.ReceiveStream) -> None:
        self.inner = inner
        self.done = trio.Event()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data = await self.inner.receive_some(max_bytes)
        if not data:
            self.done.set()
        return bytes(data)

    async def aclose(self) -> None:
        await self.inner.aclose()


class FakeProcess:
    """A driver that writes `stdout`, runs on for `runs_for` seconds and exits 0, unless it
    is killed by a signal first."""

    def __init__(self, stdout: trio.abc.ReceiveStream, runs_for: float = 0.0) -> None:
        self.pid = 0
        self.stdin = _Sink()
        self.stdout = _Written(stdout)
        self.stderr = RepeatingStream(b"-", 0)
        self.age_at_open = 0.0
        self.runs_for = runs_for
        self.exited = trio.Event()
        self.code: int | None = None
        self.resource_use = None  # what a reaped driver used: not known here

    async def live(self) -> None:
        await self.stdout.done.wait()
        await trio.sleep(self.runs_for)
        self.exit(0)

    def exit(self, code: int) -> None:
        if not self.exited.is_set():
            self.code = code
            self.exited.set()

    async def wait_exited(self) -> None:
        await self.exited.wait()

    def has_exited(self) -> bool:
        return self.exited.is_set()

    def stdout_pending(self) -> int:
        return 0

    def signal_group(self, sig: int) -> None:
        self.exit(-sig)

    def signal_leader(self, sig: int) -> None:
        self.exit(-sig)

    def reap(self) -> int | None:
        return self.code

    def limit_hits(self) -> LimitHits:
        return LimitHits()

    async def aclose_pipes(self) -> None:
        await self.stdout.aclose()


class FakeSpawner:
    """Hands out FakeProcesses, counting how many run at once; `early` are head starts."""

    def __init__(self, make: Callable[[CallSpec], FakeProcess],
                 early: frozenset[CallSpec] = frozenset()) -> None:
        self.make = make
        self.early = set(early)
        self.running = 0
        self.most = 0
        self.started: list[CallSpec] = []

    def is_running(self, spec: CallSpec) -> bool:
        return spec in self.early

    @property
    def early_pids(self) -> frozenset[int]:
        return frozenset(range(len(self.early)))

    async def start(self, spec: CallSpec) -> SupervisedProcess:
        await trio.lowlevel.checkpoint()
        self.early.discard(spec)
        self.started.append(spec)
        self.running += 1
        self.most = max(self.most, self.running)
        process = self.make(spec)

        async def run() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(process.live)
                await process.exited.wait()
                nursery.cancel_scope.cancel()
            self.running -= 1

        trio.lowlevel.spawn_system_task(run)
        return process


def spec_of(name: str, call: Call = Call.QUERY) -> CallSpec:
    return CallSpec(Driver(name, Path(f"/nonexistent/{name}")), call, ("app",))


def a_line_of(size: int, head: bytes, tail: bytes) -> trio.abc.ReceiveStream:
    body = RepeatingStream(b"d" * 4096, size - len(head) - len(tail), tail=tail)

    class Headed(trio.abc.ReceiveStream):
        sent_head = False

        async def receive_some(self, max_bytes: int | None = None) -> bytes:
            if not self.sent_head:
                self.sent_head = True
                await trio.lowlevel.checkpoint()
                return head
            return await body.receive_some(max_bytes)

        async def aclose(self) -> None:
            await body.aclose()

    return Headed()


DESCRIPTOR_HEAD = b'{"application": {"components": {"big": {"settings": {"x": {"d": "'
DESCRIPTOR_TAIL = b'"}}}}}}\n'


def supervisor(make: Callable[[CallSpec], FakeProcess]) -> tuple[Supervisor, FakeSpawner]:
    spawner = FakeSpawner(make)
    return Supervisor(SupervisionPolicy(None, 0.5, 1.0), spawner), spawner


def test_only_a_descriptor_or_a_measurement_may_be_longer_than_a_progress_line() -> None:
    for call in (Call.QUERY, Call.DESCRIBE, Call.MEASURE):
        assert line_cap(call) == MAX_RESULT_LINE_BYTES == 64 * 1024 * 1024
    for call in (Call.INFO, Call.ADJUST, Call.ROLLBACK):
        assert line_cap(call) == MAX_LINE_BYTES


async def test_a_descriptor_of_tens_of_megabytes_is_read_in_about_twice_its_size(
        autojump_clock: trio.testing.MockClock) -> None:
    size = 40 * 1024 * 1024
    sup, _ = supervisor(lambda spec: FakeProcess(
        a_line_of(size, DESCRIPTOR_HEAD, DESCRIPTOR_TAIL)))
    with peak_memory() as peak:
        outcome = await sup.call(spec_of("10big"))
        assert outcome.problem is None, outcome.problem
        assert outcome.result is not None
        described = outcome.result["application"]["components"]["big"]["settings"]["x"]
        assert len(described["d"]) == size - len(DESCRIPTOR_HEAD) - len(DESCRIPTOR_TAIL)
        del outcome, described
    # the reader's buffer and the line it hands out (2x); then the line is let go once
    # decoded: its text and the string parsed from it (2x); no third copy to check it
    assert peak[0] < 2.3 * size, peak


async def test_a_descriptor_over_the_result_cap_is_bad_output(
        autojump_clock: trio.testing.MockClock) -> None:
    endless = RepeatingStream(b"d" * 4096, 1 << 40)  # a terabyte, never sent
    sup, _ = supervisor(lambda spec: FakeProcess(endless))
    outcome = await sup.call(spec_of("10endless"))
    assert outcome.problem is not None and outcome.problem.reason == Reason.BAD_OUTPUT
    assert f"line longer than {MAX_RESULT_LINE_BYTES} bytes" in outcome.problem.detail
    assert endless.delivered <= MAX_RESULT_LINE_BYTES + 2 * 64 * 1024
    assert outcome.exit_code == -signal.SIGTERM


@pytest.mark.parametrize("call", [Call.QUERY, Call.ADJUST])
async def test_a_progress_line_over_1_mib_is_bad_output_in_any_call(
        autojump_clock: trio.testing.MockClock, call: Call) -> None:
    relayed: list[object] = []
    line = json.dumps({"progress": 5, "message": "m" * (2 * MAX_LINE_BYTES)}).encode()
    sup, _ = supervisor(lambda spec: FakeProcess(RepeatingStream(line + b"\n", len(line) + 1)))
    outcome = await sup.call(spec_of("10chatty", call), relayed.append)
    assert outcome.problem is not None and outcome.problem.reason == Reason.BAD_OUTPUT
    wanted = "progress line of" if call is Call.QUERY else "line longer than 1048576 bytes"
    assert wanted in outcome.problem.detail
    assert relayed == []  # nothing of it reached servo


async def test_parallel_calls_run_as_many_at_once_as_descriptors_allow(
        autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(call_module, "drivers_that_fit", lambda: 3)
    answer = b'{"application": {"components": {}}}\n'
    sup, spawner = supervisor(lambda spec: FakeProcess(
        RepeatingStream(answer, len(answer)), runs_for=1.0))
    specs = [spec_of(f"{i:02}d") for i in range(20)]
    outcomes = await sup.call_all(specs, parallel=True)
    assert [o.spec for o in outcomes] == specs
    assert all(o.problem is None for o in outcomes), [o.problem for o in outcomes]
    assert spawner.most == 3


async def test_head_starts_take_their_turns_first_and_the_deadline_ends_the_wait(
        autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """No room beyond two head starts: they run at once (each turn taken before any other
    call could take it), and the third call, still waiting when the budget leaves no time
    for it, is not started at all."""
    monkeypatch.setattr(call_module, "drivers_that_fit", lambda: 0)
    answer = b'{"version": "1"}\n'
    specs = [spec_of(f"{i:02}d", Call.INFO) for i in range(3)]
    spawner = FakeSpawner(lambda spec: FakeProcess(RepeatingStream(answer, len(answer)),
                                                   runs_for=5.0),
                          early=frozenset(specs[1:]))
    sup = Supervisor(SupervisionPolicy(None, 0.5, 1.0), spawner)
    outcomes = await sup.call_all(specs, parallel=True, deadline=trio.current_time() + 1.0)
    assert set(spawner.started) == set(specs[1:]) and spawner.most == 2
    first, *early = [o.problem for o in outcomes]
    assert first is not None and "not started in time" in first.detail
    assert "ulimit -n" in first.detail
    assert all(p is not None and "did not answer within the time" in p.detail for p in early)
