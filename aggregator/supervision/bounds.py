"""What a driver call's resource limits and use mean to servo and to people: a call its
memory limit stopped is `out-of-memory`, one that hit its pids limit says so in its
failure, and -v shows what each call used. Trio-free.
"""

from __future__ import annotations

from aggregator.process.call_limits import LimitHits
from aggregator.process.resources import ResourceUse
from aggregator.protocol.text import show_bytes, signal_name

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


#: Under the rlimit fallback, a peak (rusage: the largest process's resident memory) of
#: at least this share of the limit corroborates a sign on stderr. Near the limit, as a
#: program that grew into it gets; far above what a forked process starts with (a copy
#: of servo-agg's ~30 MiB counts until it execs).
OUT_OF_MEMORY_PEAK_SHARE = 0.9


def out_of_memory(memory: int | None, hits: LimitHits, exit_code: int | None,
                  stderr: str, *, answered: bool = False,
                  peak: int | None = None) -> str | None:
    """Why a call that failed was stopped by its memory limit, in words; None when it
    was not, or nothing shows it.

    With the call's cgroup, the OOM killer's count in memory.events tells it from an
    outside SIGKILL: that is authoritative. Under the rlimit fallback only the exit can
    tell: a failed exit with one of OUT_OF_MEMORY_SIGNS on stderr. A driver may log such
    words about something else (its application's memory), so when it `answered` (printed
    a result line of its own) the words need corroboration: death by a signal, or a
    `peak` near the limit (OUT_OF_MEMORY_PEAK_SHARE)."""
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
    assert exit_code is not None
    near = peak is not None and peak >= memory * OUT_OF_MEMORY_PEAK_SHARE
    if answered and exit_code > 0 and not near:
        return None
    ended = (f"died of {signal_name(-exit_code)}" if exit_code < 0
             else f"failed (exit {exit_code})")
    return (f"ran out of memory under {limit} (RLIMIT_DATA): it {ended}"
            + (f" at a peak of {show_bytes(peak)}" if near and peak is not None else "")
            + f" and its stderr says {sign!r}")


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
