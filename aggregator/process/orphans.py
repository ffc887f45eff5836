"""Killing what a driver left behind that escaped its process group.

The aggregator is a child subreaper (linux.become_subreaper), so when a driver dies its
surviving descendants, including ones that called setsid(), become our children. When no
driver is running, any child of ours is such an orphan: it is killed and reaped.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Collection

import trio

from aggregator.limits import ORPHAN_SWEEP_ROUNDS, REAP_LIMIT_SECONDS
from aggregator.process.linux import child_pids


async def _kill_and_reap(pid: int) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if pidfd is not None:
        try:
            with trio.move_on_after(REAP_LIMIT_SECONDS):
                await trio.lowlevel.wait_readable(pidfd)
        finally:
            os.close(pidfd)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG never blocks


class OrphanSweeper:
    """Kills and reaps every child that is not a driver we are supervising."""

    def __init__(self, spare: Collection[int] = ()) -> None:
        self.spare = frozenset(spare)  # our own helpers (the sentinel), never orphans

    async def sweep(self, keep: Collection[int] = ()) -> None:
        """Kill orphans generation by generation (shielded: it runs as a run ends)."""
        with trio.CancelScope(shield=True):
            for _ in range(ORPHAN_SWEEP_ROUNDS):
                orphans = child_pids() - set(keep) - self.spare
                if not orphans:
                    break
                async with trio.open_nursery() as nursery:
                    for pid in orphans:
                        nursery.start_soon(_kill_and_reap, pid)
