"""What a driver call may use, and how often it ran into that: plain values, read from
config.yaml's limits by the run and from the call's cgroup at the reap. Trio-free.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class CallLimits(Protocol):
    """A driver's resource limits, as config.yaml sets them (root.config.ResourceLimits);
    None: no limit."""

    @property
    def memory(self) -> int | None: ...  # bytes
    @property
    def pids(self) -> int | None: ...  # processes and threads at once
    @property
    def cpu(self) -> float | None: ...  # CPUs


class LimitHits(NamedTuple):
    """How often a call ran into its limits, as its cgroup counted; None: not counted
    (no cgroup, or none with that controller: then only the exit can tell)."""

    oom_kills: int | None = None  # memory.events oom_kill: processes the OOM killer ended
    pids_refused: int | None = None  # pids.events max: forks refused at pids.max
