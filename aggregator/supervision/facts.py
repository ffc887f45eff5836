"""What a run did, kept for its record: plain, bounded facts, collected as the run goes.

Each driver call leaves a CallFacts when it ends (how it ended, its progress, the tail of
its stderr, what it used), signals are noted as they come, rollback steps as they are
taken; the entry point adds the final line, the exit code and what was said on stderr.
Nothing here knows of files or JSON: the journal (aggregator/journal) turns RunFacts into
the versioned record and writes it. Trio-free: facts are collected from the start, before
trio is imported, and while it runs (on its clock: use_clock, as Output does).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aggregator.limits import (
    JOURNAL_NOTES,
    JOURNAL_PROGRESS_BYTES,
    JOURNAL_RESULT_BYTES,
    JOURNAL_STDERR_TAIL_BYTES,
)
from aggregator.process.fork import RUN_ID_VAR
from aggregator.process.linux import process_age
from aggregator.process.resources import ResourceUse
from aggregator.protocol.result import judge
from aggregator.protocol.text import signal_name
from aggregator.protocol.vocabulary import Reason, Status
from aggregator.supervision.spec import CallEnd, CallOutcome


def new_run_id(now: float | None = None) -> str:
    """A run's id: its start in UTC to the microsecond, then 24 random bits
    (`20261206T053712.123456Z-4f2a9c`). Ids sort as the runs started, and two runs
    started in the same microsecond still differ."""
    now = time.time() if now is None else now
    seconds = int(now)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))
    micros = min(999_999, round((now - seconds) * 1_000_000))
    return f"{stamp}.{micros:06d}Z-{os.urandom(3).hex()}"


def _text(data: bytes | None, limit: int, size: int | None = None) -> str | None:
    """`data` (of `size` bytes when only its start was kept) as text, its first `limit`
    bytes; a character cut in two at the end is dropped."""
    if data is None:
        return None
    cut = (len(data) if size is None else size) > limit
    return data[:limit].decode("utf-8", "ignore" if cut else "replace")


class CallFacts(NamedTuple):
    """One driver call, as the record keeps it: bounded, whatever the driver wrote."""

    driver: str
    call: str
    argv: tuple[str, ...]
    start: float  # seconds since the run started (a head start counts from its fork)
    duration: float
    end: CallEnd
    exit_code: int | None  # negative: the signal it died of
    status: str  # the call's own verdict, as servo would judge it alone
    reason: str
    detail: str  # why it failed (empty when it did not)
    progress_count: int = 0
    first_progress: str | None = None
    last_progress: str | None = None
    result: str | None = None  # its result line, as printed, cut to JOURNAL_RESULT_BYTES
    result_bytes: int = 0
    stderr_tail: str = ""  # the last JOURNAL_STDERR_TAIL_BYTES of its stderr, ok or not
    stderr_bytes: int = 0
    resource_use: ResourceUse | None = None

    @property
    def signal(self) -> str | None:
        """The signal it died of, by name."""
        code = self.exit_code
        return None if code is None or code >= 0 else signal_name(-code)

    @classmethod
    def of(cls, outcome: CallOutcome, start: float) -> CallFacts:
        failure = judge(outcome, "none")
        detail = ""
        if failure is not None:
            detail = failure.message.removeprefix(f"{outcome.spec.call}: ")
        stderr = outcome.stderr
        return cls(
            driver=outcome.spec.driver.name, call=str(outcome.spec.call),
            argv=outcome.spec.argv, start=start, duration=outcome.elapsed, end=outcome.end,
            exit_code=outcome.exit_code,
            status=Status.OK if failure is None else failure.status,
            reason=Reason.SUCCESS if failure is None else failure.reason, detail=detail,
            progress_count=outcome.progress_count,
            first_progress=_text(outcome.first_progress, JOURNAL_PROGRESS_BYTES),
            last_progress=_text(outcome.last_progress, JOURNAL_PROGRESS_BYTES),
            result=_text(outcome.result_line, JOURNAL_RESULT_BYTES, outcome.result_bytes),
            result_bytes=outcome.result_bytes,
            stderr_tail=stderr.tail(JOURNAL_STDERR_TAIL_BYTES).decode("utf-8", "replace"),
            stderr_bytes=stderr.total, resource_use=outcome.resource_use)


class RollbackStep(NamedTuple):
    """One driver put back (or not) after a failed adjust with `on_failure: rollback`."""

    driver: str
    outcome: str  # restored, failed, not attempted
    settings: Mapping[str, Any]  # component.setting: the value it was to get back
    detail: str = ""  # why it failed or was not attempted


@dataclass
class RunFacts:
    """One run, from the aggregator's start to its exit code."""

    front: str = "adjust"
    args: Sequence[str] = ()
    run_id: str = field(default_factory=new_run_id)
    parent_run: str | None = None  # the run id of a servo-agg this one is a driver of
    io_timeout: str | None = None  # OPTUNE_IO_TIMEOUT as servo set it
    started: float = field(default_factory=time.time)  # wall clock, seconds
    command: str | None = None  # None: the command line could not be understood
    app: str = ""  # the app id; empty when none was given (docs/journal.md)
    config_digest: str | None = None
    request: bytes | None = None
    calls: list[CallFacts] = field(default_factory=list)
    signals: list[tuple[str, float]] = field(default_factory=list)  # (name, seconds in)
    rollback: list[RollbackStep] = field(default_factory=list)
    servo_gone: str | None = None  # why nothing more could reach servo
    final: str | None = None  # the last line written to stdout
    result: dict[str, Any] | None = None  # ... as the object it was, when it was one
    exit_code: int | None = None
    duration: float | None = None
    notes: list[str] = field(default_factory=list)  # what the run said on stderr
    _clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _origin: float = field(default_factory=time.monotonic, repr=False)

    @classmethod
    def begin(cls, front: str, args: Sequence[str], env: Mapping[str, str]) -> RunFacts:
        """A run that started when this process did (servo's clock starts then too)."""
        age = process_age()
        started = time.time() - age
        return cls(front=front, args=tuple(args), run_id=new_run_id(started),
                   parent_run=env.get(RUN_ID_VAR), io_timeout=env.get("OPTUNE_IO_TIMEOUT"),
                   started=started, _origin=time.monotonic() - age)

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return self._clock() - self._origin

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Count from now on with `clock` (trio's, while the run is under trio)."""
        elapsed = self.elapsed()
        self._clock = clock
        self._origin = clock() - elapsed

    def signal(self, signum: int) -> None:
        """A signal came (called from signal handlers and the run's receiver); the first
        JOURNAL_NOTES are kept."""
        if len(self.signals) < JOURNAL_NOTES:
            self.signals.append((signal_name(signum), self.elapsed()))

    def call_ended(self, outcome: CallOutcome) -> None:
        self.calls.append(CallFacts.of(outcome, self.elapsed() - outcome.elapsed))
