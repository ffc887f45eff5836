"""What one driver call is, and what came of it. Trio-free: a command declares the calls
it makes first before trio is imported, so that they can get a head start."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from aggregator.process.resources import ResourceUse
from aggregator.protocol.vocabulary import Call, Reason
from aggregator.root.discovery import Driver
from aggregator.supervision.stderr import StderrCapture


class CallSpec(NamedTuple):
    """One call of one driver. Hashable: a head start is keyed by the call it is for."""

    driver: Driver
    call: Call
    args: tuple[str, ...]
    stdin: bytes = b""

    @property
    def argv(self) -> tuple[str, ...]:
        return (str(self.driver.path), *self.args)


def question(driver: Driver, call: Call, app: str) -> CallSpec:
    """A call that asks a driver something: `--info`, `--query` or `--describe`, then the
    app id if there is one (an operator's `--query` by hand may have none: none invented)."""
    return CallSpec(driver, call, (f"--{call}", *((app,) if app else ())))


class TimeLimit(NamedTuple):
    """How long one call may run, counted from its driver's own start (a head start's
    real start): once `seconds` have passed, the kill cascade starts (never sooner) and
    the call fails as `timeout`, saying how long it ran and what it overran. Unlike a
    call's answer `deadline` (Supervisor.call), by which the cascade must be over, this is
    when the cascade begins. measure's window_grace is one: the driver's own window plus
    the grace."""

    seconds: float
    #: what the call overran, as the message says it: "its 1 s measurement window and the
    #: 3 s window_grace"
    past: str

    def detail(self, ran: float) -> str:
        return f"ran {ran:.1f} s, past {self.past}; killed"


class Problem(NamedTuple):
    """Why the aggregator, not the driver, ended a call."""

    reason: Reason
    detail: str


class CallEnd(StrEnum):
    """How a driver call ended, as the run's record says it (the first that applies)."""

    NOT_STARTED = "not-started"  # no process: it could not be started, or was not
    TIMEOUT = "timeout"  # killed for silence, or for the time a one-line answer has
    STOPPED = "stopped"  # servo-agg was told to terminate (or servo went away)
    CANCELED = "canceled"  # it was sent SIGUSR1 (servo's cancel, or a failed sibling)
    KILLED = "killed"  # the kill cascade ended it (e.g. after a line that is no JSON)
    SIGNALED = "signaled"  # it died of a signal servo-agg did not send
    EXITED = "exited"  # it exited on its own


@dataclass
class CallOutcome:
    spec: CallSpec
    result: dict[str, Any] | None = None  # the last line without "progress"
    exit_code: int | None = None  # negative: killed by that signal
    problem: Problem | None = None
    stderr: StderrCapture = field(default_factory=StderrCapture)
    elapsed: float = 0.0
    end: CallEnd = CallEnd.NOT_STARTED
    # For the run's record: the result line as printed (its first JOURNAL_RESULT_BYTES)
    # and its size; how many progress lines came, the first and the last (as printed).
    result_line: bytes | None = None
    result_bytes: int = 0
    progress_count: int = 0
    first_progress: bytes | None = None
    last_progress: bytes | None = None
    resource_use: ResourceUse | None = None
    #: a limit it ran into, said in its failure (pids; memory under its own failure)
    limit_note: str | None = None

    @property
    def driver(self) -> Driver:
        return self.spec.driver

    @property
    def kept_from_starting_by_the_stop(self) -> bool:
        """The run's own stop (SIGTERM, SIGINT, servo's cancel) came before this call
        started: not a failure of the driver's (an adjust's queries)."""
        problem = self.problem
        return (self.end is CallEnd.NOT_STARTED and problem is not None
                and problem.reason in (Reason.TERMINATED, Reason.CANCELED))

    @property
    def cut_by_the_stop(self) -> bool:
        """The run's own stop ended this call or kept it from starting: it says nothing
        about the driver (--check, --version)."""
        return (self.end in (CallEnd.STOPPED, CallEnd.CANCELED)
                or self.kept_from_starting_by_the_stop)
