"""What a driver's resource limits mean for its outcome: `out-of-memory` when its memory
limit stopped it (the cgroup's OOM count, or its exit under the rlimit fallback), a pids
limit reached said in its failure, and its use in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.process.call_limits import LimitHits
from aggregator.process.resources import ResourceUse
from aggregator.protocol.result import judge, speaks_for_itself
from aggregator.protocol.text import show_bytes
from aggregator.protocol.vocabulary import Call
from aggregator.root.discovery import Driver
from aggregator.supervision.bounds import describe_use, out_of_memory, pids_reached
from aggregator.supervision.spec import CallOutcome, CallSpec
from aggregator.supervision.stderr import StderrCapture

pytestmark = pytest.mark.unit

MIB = 1 << 20
COUNTED = LimitHits(oom_kills=1, pids_refused=0)
NOT_COUNTED = LimitHits()


def test_the_oom_killers_count_tells_it_from_an_outside_sigkill() -> None:
    assert out_of_memory(64 * MIB, COUNTED, -9, "") == (
        "ran out of memory: the kernel's OOM killer ended it at its memory limit of "
        "64 MiB (memory.events: oom_kill 1)")
    assert out_of_memory(64 * MIB, LimitHits(oom_kills=0), -9, "MemoryError") is None


def test_without_a_count_the_exit_and_stderr_tell_it() -> None:
    """The rlimit fallback: an allocation fails, and the program says so as it dies."""
    said = "Traceback (most recent call last):\n  ...\nMemoryError\n"
    assert out_of_memory(64 * MIB, NOT_COUNTED, 1, said) == (
        "ran out of memory under its memory limit of 64 MiB (RLIMIT_DATA): it failed "
        "(exit 1) and its stderr says 'MemoryError'")


def test_a_driver_that_answered_needs_more_than_words() -> None:
    """It printed a result line of its own: a sign on stderr alone may be about something
    else; a death by signal or a peak near the limit corroborates it."""
    said = "std::bad_alloc"
    assert out_of_memory(64 * MIB, NOT_COUNTED, 1, said, answered=True, peak=40 * MIB) is None
    assert out_of_memory(64 * MIB, NOT_COUNTED, 1, said, answered=True) is None
    assert out_of_memory(64 * MIB, NOT_COUNTED, -6, said, answered=True) == (
        "ran out of memory under its memory limit of 64 MiB (RLIMIT_DATA): it died of "
        "SIGABRT and its stderr says 'bad_alloc'")
    assert out_of_memory(64 * MIB, NOT_COUNTED, 1, said, answered=True, peak=60 * MIB) == (
        "ran out of memory under its memory limit of 64 MiB (RLIMIT_DATA): it failed (exit "
        "1) at a peak of 60 MiB and its stderr says 'bad_alloc'")
    assert out_of_memory(64 * MIB, NOT_COUNTED, 1, said, answered=False) is not None


@pytest.mark.parametrize(("result", "code", "speaks"), [
    ({"status": "rejected", "reason": "out-of-range"}, 1, True),
    ({"status": "failed"}, 0, True),
    ({"status": "failed"}, -9, False),  # a death by signal is judged as such
    ({"status": "ok"}, 1, False),
    ({"status": "success"}, 1, False),  # not one of servo's statuses
    (None, 1, False),
])
def test_a_driver_speaks_for_itself_with_a_failure_status_of_its_own(
        result: dict[str, str] | None, code: int, speaks: bool) -> None:
    assert speaks_for_itself(result, code) is speaks


@pytest.mark.parametrize("said", [
    "fatal error: runtime: out of memory",  # Go
    "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
    'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space',
    "terminate called after throwing an instance of 'std::bad_alloc'",
    "memory allocation of 1073741824 bytes failed",  # Rust
    "sort: cannot allocate memory",  # strerror(ENOMEM), any case
    "bash: xmalloc: cannot allocate 12 bytes (0 bytes allocated)\nout of memory",
])
def test_each_runtimes_way_of_saying_it(said: str) -> None:
    assert out_of_memory(MIB, NOT_COUNTED, 134, said) is not None


@pytest.mark.parametrize(("memory", "code", "said"), [
    (None, 1, "MemoryError"),  # no memory limit: not ours to judge
    (64 * MIB, 0, "MemoryError"),  # it succeeded: whatever it logged
    (64 * MIB, None, "MemoryError"),  # never reaped
    (64 * MIB, 1, "ValueError: bad input"),  # failed for another reason
])
def test_no_out_of_memory_without_the_evidence(memory: int | None, code: int | None,
                                               said: str) -> None:
    assert out_of_memory(memory, NOT_COUNTED, code, said) is None


def test_a_pids_limit_reached_is_said_from_pids_events() -> None:
    assert pids_reached(64, LimitHits(pids_refused=3)) == (
        "its pids limit of 64 was reached: 3 forks refused (pids.events: max 3)")
    assert pids_reached(64, LimitHits(pids_refused=1)) == (
        "its pids limit of 64 was reached: 1 fork refused (pids.events: max 1)")
    assert pids_reached(64, LimitHits(pids_refused=0)) is None
    assert pids_reached(64, NOT_COUNTED) is None
    assert pids_reached(None, LimitHits(pids_refused=3)) is None


def outcome(code: int, note: str | None) -> CallOutcome:
    spec = CallSpec(Driver("10web", Path("/nowhere/10web")), Call.ADJUST, ("app",))
    return CallOutcome(spec, result=None, exit_code=code, stderr=StderrCapture(),
                       limit_note=note)


def test_the_failure_of_a_driver_that_reached_its_pids_limit_says_so() -> None:
    """Its own failure (here driver-failed), and why it most likely failed."""
    failure = judge(outcome(1, "its pids limit of 64 was reached: 3 forks refused "
                               "(pids.events: max 3)"), "all")
    assert failure is not None
    assert (failure.reason, failure.message) == (
        "driver-failed", "adjust: exited with code 1; its pids limit of 64 was reached: "
                         "3 forks refused (pids.events: max 3)")
    plain = judge(outcome(1, None), "all")
    assert plain is not None and plain.message == "adjust: exited with code 1"


def test_use_in_words() -> None:
    assert describe_use(ResourceUse(0.0312, 0.01, 12 * MIB + 300 * 1024, "rusage")) == (
        "cpu 0.041 s, peak 12.3 MiB (rusage)")
    assert describe_use(ResourceUse(1.5, 0.5, 3 << 30, "cgroup")) == (
        "cpu 2.000 s, peak 3 GiB (cgroup)")
    assert describe_use(None) == "use unknown"


@pytest.mark.parametrize(("size", "shown"), [
    (64 * MIB, "64 MiB"), (1536 * MIB, "1.5 GiB"), (1 << 40, "1024 GiB"), (4096, "4 KiB"),
    (1000, "1000 bytes"), (0, "0 bytes"),
])
def test_show_bytes(size: int, shown: str) -> None:
    assert show_bytes(size) == shown
