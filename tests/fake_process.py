"""Fake driver processes for the supervision layer: scripted stdout on trio's clock, and
signals that end them as they would end a real driver. No process is started."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from aggregator.protocol.vocabulary import Call
from aggregator.root.discovery import Driver
from aggregator.supervision.spawner import SupervisedProcess
from aggregator.supervision.spec import CallSpec


@dataclass
class Script:
    """What a fake driver does: each (seconds, bytes) in turn on stdout, then exits with
    `exit_code`, or, with hang=True, stays silent until a signal ends it."""

    lines: Sequence[tuple[float, bytes]] = ()
    exit_code: int = 0
    hang: bool = False
    ignore_term: bool = False


class _Sink(trio.abc.SendStream):
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class _Stream(trio.abc.ReceiveStream):
    def __init__(self, proc: FakeProcess, script: Script | None) -> None:
        self._proc = proc
        self._lines = list(script.lines) if script else []
        self._script = script

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._lines and not self._proc.has_exited():
            delay, data = self._lines.pop(0)
            with trio.move_on_after(delay):
                await self._proc.ended.wait()
            if not self._proc.has_exited():
                return data
        if self._script is not None and not self._script.hang:
            self._proc.exit(self._script.exit_code)
        await self._proc.ended.wait()
        return b""

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@dataclass(eq=False)
class FakeProcess:
    script: Script
    pid: int = 424242
    age_at_open: float = 0.0
    signals: list[int] = field(default_factory=list)
    returncode: int | None = None
    ended: trio.Event = field(default_factory=trio.Event)

    def __post_init__(self) -> None:
        self.stdin: trio.abc.SendStream = _Sink()
        self.stdout: trio.abc.ReceiveStream = _Stream(self, self.script)
        self.stderr: trio.abc.ReceiveStream = _Stream(self, None)

    def exit(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            self.ended.set()

    async def wait_exited(self) -> None:
        await self.ended.wait()

    def has_exited(self) -> bool:
        return self.returncode is not None

    def stdout_pending(self) -> int:
        return 0

    def signal_group(self, sig: int) -> None:
        self.signals.append(sig)
        if sig == signal.SIGKILL or (sig == signal.SIGTERM and not self.script.ignore_term):
            self.exit(-sig)

    def signal_leader(self, sig: int) -> None:
        self.signal_group(sig)

    def reap(self) -> int | None:
        return self.returncode

    async def aclose_pipes(self) -> None:
        await trio.lowlevel.checkpoint()


class FakeSpawner:
    """Hands out a FakeProcess per call, following the script given for its driver."""

    def __init__(self, scripts: dict[str, Script]) -> None:
        self.scripts = scripts
        self.started: list[FakeProcess] = []

    def is_running(self, spec: CallSpec) -> bool:
        return False

    @property
    def early_pids(self) -> frozenset[int]:
        return frozenset()

    async def start(self, spec: CallSpec) -> SupervisedProcess:
        await trio.lowlevel.checkpoint()
        proc = FakeProcess(self.scripts[spec.driver.name])
        self.started.append(proc)
        return proc


def fake_spec(name: str, call: Call = Call.ADJUST) -> CallSpec:
    return CallSpec(Driver(name, Path("/nonexistent") / name), call, ("app",))
