"""Supervision within the process's limits, on fake processes: parallel calls run only as
many at once as descriptors allow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from aggregator.protocol.vocabulary import Call
from aggregator.root.discovery import Driver
from aggregator.supervision import call as call_module
from aggregator.supervision.call import SupervisionPolicy, Supervisor
from aggregator.supervision.spawner import SupervisedProcess
from aggregator.supervision.spec import CallSpec
from tests.streams import RepeatingStream

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


def supervisor(make: Callable[[CallSpec], FakeProcess]) -> tuple[Supervisor, FakeSpawner]:
    spawner = FakeSpawner(make)
    return Supervisor(SupervisionPolicy(None, 0.5, 1.0), spawner), spawner


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
