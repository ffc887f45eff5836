"""The seam between supervision and real processes: supervision asks a Spawner for the
process of a call, so that tests can hand it fake processes on trio's MockClock.

DriverSpawner is the real one: it takes over a head start declared for exactly this
call, or starts the driver now.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import trio

from aggregator.process.call_limits import LimitHits
from aggregator.process.driver_process import open_driver
from aggregator.process.headstart import Headstart
from aggregator.process.resources import ResourceUse
from aggregator.root.config import RunBounds
from aggregator.root.shebang import spawn_failure
from aggregator.supervision.spec import CallSpec


class SpawnError(OSError):
    """A driver that could not be started; str() says why in words (e.g. the missing
    interpreter its #! line names)."""


class SupervisedProcess(Protocol):
    """What supervision needs of a driver process (process.driver_process.DriverProcess)."""

    @property
    def pid(self) -> int: ...
    @property
    def stdin(self) -> trio.abc.SendStream: ...
    @property
    def stdout(self) -> trio.abc.ReceiveStream: ...
    @property
    def stderr(self) -> trio.abc.ReceiveStream: ...
    @property
    def age_at_open(self) -> float: ...
    async def wait_exited(self) -> None: ...
    def has_exited(self) -> bool: ...
    def stdout_pending(self) -> int: ...
    def signal_group(self, sig: int) -> None: ...
    def signal_leader(self, sig: int) -> None: ...
    def reap(self) -> int | None: ...
    @property
    def resource_use(self) -> ResourceUse | None:
        """What it used, once reaped (None where that is not known)."""
        ...
    def limit_hits(self) -> LimitHits: ...
    async def aclose_pipes(self) -> None: ...


class Spawner(Protocol):
    def is_running(self, spec: CallSpec) -> bool:
        """True when a process for this call already runs (a head start)."""
        ...

    @property
    def early_pids(self) -> frozenset[int]:
        """Processes started early and not yet taken: never orphans to sweep."""
        ...

    async def start(self, spec: CallSpec) -> SupervisedProcess:
        """The process for this call; raises OSError (SpawnError, worded) when it cannot
        be started."""
        ...


class DriverSpawner:
    """Starts drivers with cwd = servo root and `env`, the drivers' environment as
    process.fork.child_environment makes it (the servo root on PYTHONPATH, the run mark),
    each held to the resource limits of its `bounds`."""

    def __init__(self, servo_root: Path, env: Mapping[str, str],
                 headstart: Headstart[CallSpec] | None = None,
                 bounds: RunBounds | None = None) -> None:
        self._root = servo_root
        self._env = env
        self._headstart = headstart if headstart is not None else Headstart()
        self._bounds = bounds or RunBounds()

    def is_running(self, spec: CallSpec) -> bool:
        return self._headstart.has(spec)

    @property
    def early_pids(self) -> frozenset[int]:
        return self._headstart.waiting_pids

    async def start(self, spec: CallSpec) -> SupervisedProcess:
        early = self._headstart.take(spec)
        try:
            limits = self._bounds.of(spec.driver.name).limits
            return await open_driver(spec.argv, self._root, self._env, early,
                                     self._headstart.guards, limits)
        except OSError as exc:
            raise SpawnError(spawn_failure(spec.driver.path, exc, self._root)) from exc
