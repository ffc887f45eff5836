"""Starting the first driver call(s) before trio is imported.

Importing trio costs ~90 ms, and a Python driver takes ~70 ms just to start: overlapping
the two is the largest saving left on every servo call (see bench/run.py). The calls
started here are exactly those the command will make first (the first --query, all of
them with parallel_queries, every --info for --version), so no driver runs that would
not have run, and the order of drivers is unchanged. Until trio supervises them they
are guarded like any driver (own session, parent-death signal, the sentinel's mark);
one that no supervised call takes up is killed and reaped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from aggregator.process.fork import StartedProcess, child_environment, fork_driver


class Headstart:
    """Driver processes started early, each waiting for its supervised call."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, ...], StartedProcess] = {}

    def start(self, argv: Sequence[str], servo_root: Path, env: Mapping[str, str]) -> None:
        """Start one call now; if it cannot start, its supervised call will say why."""
        with contextlib.suppress(OSError):
            self._waiting[tuple(argv)] = fork_driver(
                argv, servo_root, child_environment(env, servo_root))

    def take(self, argv: Sequence[str]) -> StartedProcess | None:
        """The process already running `argv`, handed over to its supervisor."""
        return self._waiting.pop(tuple(argv), None)

    def is_waiting(self, argv: Sequence[str]) -> bool:
        return tuple(argv) in self._waiting

    @property
    def waiting_pids(self) -> frozenset[int]:
        return frozenset(p.pid for p in self._waiting.values())

    def discard_all(self) -> None:
        """Kill and reap every early start that was not taken up (e.g. servo canceled)."""
        while self._waiting:
            _, process = self._waiting.popitem()
            process.discard()
