"""What a driver call's resource limits and use mean to servo and to people: a call its
memory limit stopped is `out-of-memory`, one that hit its pids limit says so in its
failure, and -v shows what each call used. Trio-free.
"""

from __future__ import annotations

from aggregator.process.call_limits import LimitHits
from aggregator.process.resources import ResourceUse
from aggregator.protocol.text import show_bytes

#: What a program that failed for want of memory says on stderr, where only its exit can
#: tell (no cgroup with the memory controller: the limit is RLIMIT_DATA, under which
#: allocations fail instead of a process being killed). Matched without case.
OUT_OF_MEMORY_SIGNS = (
    "MemoryError",  # Python
    "Cannot allocate memory",  # strerror(ENOMEM): C programs, coreutils, the shell
    "out of memory",  # Go ("runtime: out of memory"), Node ("heap out of memory"), C
    "OutOfMemoryError",  # Java
    "bad_alloc",  # C++ (std::bad_alloc)
    "memory allocation of",  # Rust ("memory allocation of N bytes failed")
)


def out_of_memory(memory: int | None, hits: LimitHits, exit_code: int | None,
                  stderr: str) -> str | None:
    """Why a call that failed was stopped by its memory limit, in words; None when it
    was not, or nothing shows it. With the call's cgroup, the OOM killer's count in
    memory.events tells it from an outside SIGKILL; under the rlimit fallback, a failed
    exit with one of OUT_OF_MEMORY_SIGNS on stderr does."""
    if memory is None or exit_code in (0, None):
        return None
    limit = f"its memory limit of {show_bytes(memory)}"
    if hits.oom_kills is not None:
        if not hits.oom_kills:
            return None
        return (f"ran out of memory: the kernel's OOM killer ended it at {limit} "
                f"(memory.events: oom_kill {hits.oom_kills})")
    said = stderr.casefold()
    sign = next((s for s in OUT_OF_MEMORY_SIGNS if s.casefold() in said), None)
    if sign is None:
        return None
    return (f"ran out of memory under {limit} (RLIMIT_DATA): it failed (exit "
            f"{exit_code}) and its stderr says {sign!r}")


def pids_reached(pids: int | None, hits: LimitHits) -> str | None:
    """That the call's pids limit was reached, from its cgroup's pids.events (None when
    it was not, or nothing counted)."""
    if pids is None or not hits.pids_refused:
        return None
    refused = hits.pids_refused
    return (f"its pids limit of {pids} was reached: {refused} fork{'s' if refused != 1 else ''} "
            f"refused (pids.events: max {refused})")


def describe_use(use: ResourceUse | None) -> str:
    """One call's use for -v: `cpu 0.041 s, peak 12.3 MiB (rusage)`."""
    if use is None:
        return "use unknown"
    return (f"cpu {use.user_cpu + use.system_cpu:.3f} s, peak {show_bytes(use.peak_memory)} "
            f"({use.source})")
