"""Driver processes started before trio is imported, each waiting for the call it is for.

Importing trio costs ~90 ms and a Python driver ~70 ms just to start: overlapping the two
is the largest saving left on every servo call. A head start is keyed by whatever the
caller declared it for (an opaque, hashable key); the supervised call for that same key
takes the process over, and one that nobody takes is killed and reaped. Trio-free.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from aggregator.process.call_limits import CallLimits
from aggregator.process.fork import UNWATCHED, Guards, StartedProcess, fork_driver

Key = TypeVar("Key", bound=Hashable)


class Headstart(Generic[Key]):
    """Processes started early, each waiting for the call declared with its key; `guards`
    are the run's, for these and for every driver started later (spawner.py)."""

    def __init__(self, guards: Guards = UNWATCHED) -> None:
        self.guards = guards
        self._waiting: dict[Key, StartedProcess] = {}

    def start(self, key: Key, argv: Sequence[str], cwd: Path, env: Mapping[str, str],
              limits: CallLimits | None = None) -> None:
        """Start one process now, held to `limits`; if it cannot start, its supervised
        call will say why."""
        with contextlib.suppress(OSError):
            self._waiting[key] = fork_driver(argv, cwd, env, self.guards, limits)

    def take(self, key: Key) -> StartedProcess | None:
        """The process already running for `key`, handed over to its supervisor."""
        return self._waiting.pop(key, None)

    def has(self, key: Key) -> bool:
        return key in self._waiting

    @property
    def waiting_pids(self) -> frozenset[int]:
        return frozenset(p.pid for p in self._waiting.values())

    def discard_all(self) -> None:
        """Kill and reap every early start that was not taken up (e.g. servo canceled)."""
        while self._waiting:
            _, process = self._waiting.popitem()
            process.discard()
