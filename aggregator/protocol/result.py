"""Turning driver call outcomes into what servo reads: one status, reason and message."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from aggregator.protocol.environment import StderrMode
from aggregator.protocol.text import brief, clip, clip_message, signal_name
from aggregator.protocol.vocabulary import SERVO_STATUSES, Call, Reason, Status


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Called(Protocol):
    @property
    def call(self) -> str: ...


class _Problem(Protocol):
    @property
    def reason(self) -> str: ...
    @property
    def detail(self) -> str: ...


class _Stderr(Protocol):
    def for_message(self, mode: StderrMode) -> str: ...


class CallOutcome(Protocol):
    """What judge() reads of a finished call (supervision's CallOutcome has it all)."""

    @property
    def driver(self) -> _Named: ...
    @property
    def spec(self) -> _Called: ...
    @property
    def result(self) -> dict[str, Any] | None: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def problem(self) -> _Problem | None: ...
    @property
    def stderr(self) -> _Stderr: ...
    @property
    def limit_note(self) -> str | None: ...



class DriverFailure(NamedTuple):
    driver: str
    call: str
    status: str
    reason: str
    message: str
    stderr: str = ""

    def line(self) -> str:
        """`name: status: message` on one line, so servo's message has one line per driver."""
        message = " / ".join(part.strip() for part in self.message.splitlines() if part.strip())
        return f"{self.driver}: {self.status}: {message}"


def _servo_status(status: Any) -> bool:
    return isinstance(status, str) and status in SERVO_STATUSES


def own_failure_status(result: Mapping[str, Any] | None) -> str | None:
    """The failure status a driver's own result line gives (failed, rejected, ...); None
    when it gives none servo knows but ok."""
    status = (result or {}).get("status")
    return status if _servo_status(status) and status != "ok" else None


def speaks_for_itself(result: Mapping[str, Any] | None, exit_code: int | None) -> bool:
    """Whether judge() reports the driver's own failed or rejected result, its status and
    reason: it printed one and exited (a signal's death is judged as such). Nothing that
    only supervision infers (e.g. out-of-memory from its stderr) may take its place."""
    return exit_code is not None and exit_code >= 0 and own_failure_status(result) is not None


def judge(outcome: CallOutcome, stderr_mode: StderrMode) -> DriverFailure | None:
    """None when the call succeeded; otherwise why it failed, in servo's terms.

    A driver has failed when the aggregator had to stop it, when it exited non-zero or
    by a signal (whatever it printed), or when it printed no result line. An adjust,
    rollback or measure result line must also say `status: ok`.
    """
    name, call = outcome.driver.name, outcome.spec.call
    stderr = outcome.stderr.for_message(stderr_mode)
    result = outcome.result or {}
    status = result.get("status")
    said = str(result.get("message") or result.get("reason") or "")

    def failure(status: str, reason: str, message: str) -> DriverFailure:
        if outcome.limit_note:  # e.g. its pids limit was reached: likely why it failed
            message += f"; {outcome.limit_note}"
        return DriverFailure(name, call, status, reason, f"{call}: {message}", stderr)

    if outcome.problem is not None:
        status_for = {"canceled": "canceled", "terminated": "aborted"}
        detail = outcome.problem.detail + (f" (it said: {said})" if said else "")
        return failure(status_for.get(outcome.problem.reason, "failed"),
                       outcome.problem.reason, detail)
    code = outcome.exit_code
    if code is not None and code < 0:
        return failure("failed", "killed-by-signal",
                       f"killed by {signal_name(-code)}" + (f" (it said: {said})" if said
                                                             else ""))
    # A status servo does not know ("success", "", 5) is reported as failed, and named.
    failed_as = own_failure_status(result)
    unknown = (f"status {brief(status)} is not one of servo's ({', '.join(Status)})"
               if status is not None and not _servo_status(status) else "")
    driver_reason = clip(str(result.get("reason") or "driver-failed"))
    if code not in (0, None):
        if status == "ok" or not said:
            detail = f"exited with code {code}" + (" after printing status ok"
                                                    if status == "ok" else "")
        else:
            detail = f"{said} (exit code {code})"
        reason = driver_reason if failed_as is not None else "driver-failed"
        return failure(failed_as or "failed", reason,
                       detail + (f"; {unknown}" if unknown else ""))
    if outcome.result is None:
        return failure("failed", "no-result", "exited 0 without printing a result line")
    if unknown:
        return failure(Status.FAILED, Reason.BAD_STATUS, f"{said} ({unknown})" if said else unknown)
    if failed_as is not None:
        return failure(failed_as, driver_reason, said or f"status {status}")
    if call in (Call.ADJUST, Call.ROLLBACK, Call.MEASURE) and status != "ok":
        # servo fails these without `status: ok` (only a description may omit it)
        return failure("failed", "no-result", f"result line has no status: {result!r:.200}")
    return None


def fold(failures: Sequence[DriverFailure], extra_lines: Sequence[str] = (),
         headline: str | None = None) -> dict[str, Any]:
    """All failures as one result: `rejected` wins, else the first failure's status (failed
    when servo would not know it: servo is never handed a status outside its vocabulary).

    The one shape of every failure servo hears of, at any step: `headline` (what the
    command could not do, if it ended early), a line per failed driver, `extra_lines`,
    then each failed driver's stderr excerpt; and `failed_drivers`."""
    if not failures:
        return {"status": "ok", "reason": "success"}
    first = failures[0].status
    status = ("rejected" if any(f.status == "rejected" for f in failures)
              else first if _servo_status(first) and first != "ok" else "failed")
    reasons: list[str] = []
    for f in failures:
        if f.reason not in reasons:
            reasons.append(f.reason)
    lines = ([headline] if headline else []) + [f.line() for f in failures] + list(extra_lines)
    for f in failures:
        if f.stderr:
            lines.append(f"--- {f.driver} stderr ---\n{f.stderr}")
    return {
        "status": status,
        "reason": "; ".join(reasons),
        "message": clip_message("\n".join(lines)),
        "failed_drivers": [f.driver for f in failures],
    }


class AdjustStanding(NamedTuple):
    """Where each driver of an adjust stood when servo stopped or canceled it: what the
    application holds now. Lists, in driver order: several drivers may be cut short at
    once (when they run together)."""

    completed: Sequence[str] = ()  # adjust ended ok: its changes are applied
    interrupted: Sequence[str] = ()  # running when the stop came: may be partly applied
    not_started: Sequence[str] = ()  # nothing of theirs changed
    failed: Sequence[str] = ()  # failed before the stop (their lines follow)
    rolled_back: Sequence[str] = ()  # completed, then put back before the stop
    #: completed, then the stop cut its rollback short: may be partly put back
    rollback_interrupted: Sequence[str] = ()
    #: the stop came while the drivers were queried: no adjust had started
    during_queries: bool = False

    def lines(self) -> list[str]:
        """A line for each kind that has drivers; the applied and the interrupted ones
        always, since that is what the operator must know first (first of all, when the
        stop came before any adjust, that nothing was changed)."""
        kinds = [("applied (adjust completed)", self.completed, True),
                 ("interrupted (may be partly applied)", self.interrupted, True),
                 ("not started (unchanged)", self.not_started, False),
                 ("failed before the stop", self.failed, False),
                 ("rolled back before the stop", self.rolled_back, False),
                 ("rollback interrupted (may be partly restored)", self.rollback_interrupted,
                  False)]
        before = (["nothing was changed: the stop came during the drivers' queries, before "
                   "any adjust started"] if self.during_queries else [])
        return before + [f"{label}: {', '.join(names) or 'none'}"
                         for label, names, always in kinds if names or always]
