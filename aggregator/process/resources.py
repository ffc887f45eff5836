"""What a driver process used: CPU time and peak memory, as the kernel reports them.

`rusage` is what wait4(2) gives when the driver is reaped: its own CPU time plus that of
every descendant it waited for, and as peak memory the largest resident set of any one
of those processes (not their sum). On Linux a forked process counts, until it execs,
the memory it shares with the process that forked it, so a small driver's peak is at
least what servo-agg had resident when it forked it. `cgroup` is for a call with a
cgroup of its own, whose files count every process in it, however it ended. Trio-free.
"""

from __future__ import annotations

import resource
from typing import Literal, NamedTuple

Source = Literal["rusage", "cgroup"]


class ResourceUse(NamedTuple):
    """CPU seconds (user, system) and peak resident memory in bytes, and where from."""

    user_cpu: float
    system_cpu: float
    peak_memory: int
    source: Source = "rusage"

    @classmethod
    def of_rusage(cls, usage: resource.struct_rusage) -> ResourceUse:
        """From wait4's rusage (Linux gives ru_maxrss in KiB)."""
        return cls(usage.ru_utime, usage.ru_stime, usage.ru_maxrss * 1024)
