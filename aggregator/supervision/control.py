"""A run's stop state: servo's cancel and terminate, delivered to every running call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import trio

from aggregator.supervision.signals import STOP_SIGNALS, deliver


class RunningCall(Protocol):
    name: str  # the driver, for the final line

    def request_cancel(self) -> None: ...
    def request_terminate(self) -> None: ...


class RunControl:
    """One run's stop state: set by signals, read by the command loop and each driver call."""

    def __init__(self) -> None:
        self._running: set[RunningCall] = set()
        self.canceled = False
        self.terminated_by: int | None = None
        self.terminated_because: str | None = None  # servo went away: how (not a signal)
        self.interrupted: list[str] = []  # drivers running when the stop came, for servo

    def _interrupt(self, call: RunningCall) -> None:
        if call.name not in self.interrupted:
            self.interrupted.append(call.name)

    @property
    def stopping(self) -> bool:
        return self.canceled or self.terminated_by is not None

    def attach(self, call: RunningCall) -> None:
        self._running.add(call)
        if self.stopping:
            self._interrupt(call)
        if self.terminated_by is not None:
            call.request_terminate()
        elif self.canceled:
            call.request_cancel()

    def detach(self, call: RunningCall) -> None:
        self._running.discard(call)

    @property
    def running_count(self) -> int:
        return len(self._running)

    def is_running(self, name: str) -> bool:
        """Whether a call of the driver `name` is running under this control."""
        return any(call.name == name for call in self._running)

    def cancel(self) -> None:
        """servo's SIGUSR1: the running driver may finish its own way, no new one starts."""
        self.canceled = True
        for call in sorted(self._running, key=lambda c: c.name):
            self._interrupt(call)
            call.request_cancel()

    def terminate(self, signum: int, because: str | None = None) -> None:
        """SIGTERM/SIGINT: the running driver is killed now, no new one starts. The same
        when servo went away (`because` says how; `signum` stands for it)."""
        if self.terminated_by is None:
            self.terminated_by = signum
            self.terminated_because = because
        for call in sorted(self._running, key=lambda c: c.name):
            self._interrupt(call)
            call.request_terminate()


def ended_as(name: str, failed: bool, run: RunControl,
             group: RunControl | None = None) -> str:
    """How a driver's call ended, as its progress line says it (adjust and measure alike):
    `done`; `canceled` or `stopped` when servo's cancel or terminate (or the cancel of its
    `group`, such as a failing measure driver's siblings) cut it short; `failed` only when
    it failed on its own."""
    if not failed:
        return "done"
    if (group is not None and group.canceled and name in group.interrupted) or (
            run.stopping and run.terminated_by is None):
        return "canceled"
    return "stopped" if run.stopping else "failed"


async def listen_for_signals(
    control: RunControl, *, record: Callable[[int], None] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Turn servo's signals into control requests, inside the structured flow; each is
    told to `record` (the run's record) as it comes."""
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        task_status.started()
        async for signum in signals:
            if record is not None:
                record(signum)
            deliver(signum, control)
