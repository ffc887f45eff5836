"""What a driver call may use, what it used, and how often it ran into a limit: plain
values the process layer fills in at the reap, from the call's own cgroup where it has
one and from the kernel's rusage otherwise. Trio-free.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import Literal, Protocol

#: Where a ResourceUse was read: the call's own cgroup (cpu.stat, memory.peak: the
#: driver and everything it started), or the rusage wait4() gave at the reap (the driver
#: and the descendants it waited for).
UseSource = Literal["rusage", "cgroup"]


class CallLimits(Protocol):
    """A driver's resource limits, as config.yaml sets them (root.config.ResourceLimits);
    None: no limit."""

    @property
    def memory(self) -> int | None: ...  # bytes
    @property
    def pids(self) -> int | None: ...  # processes and threads at once
    @property
    def cpu(self) -> float | None: ...  # CPUs


@dataclass(frozen=True)
class ResourceUse:
    """What one driver call used, measured."""

    cpu_seconds: float  # user and system
    peak_memory_bytes: int  # resident: the largest process (rusage), or the whole cgroup
    source: UseSource


def use_from_rusage(usage: resource.struct_rusage) -> ResourceUse:
    """wait4()'s rusage of a reaped driver (ru_maxrss is in KiB on Linux)."""
    return ResourceUse(usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, "rusage")


@dataclass(frozen=True)
class LimitHits:
    """How often a call ran into its limits, as its cgroup counted; None: not counted
    (no cgroup, or none with that controller: then only the exit can tell)."""

    oom_kills: int | None = None  # memory.events oom_kill: processes the OOM killer ended
    pids_refused: int | None = None  # pids.events max: forks refused at pids.max
