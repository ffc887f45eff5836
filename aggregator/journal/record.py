"""One run's record: what the run did (supervision/facts.py) as one versioned JSON object,
one line of the journal. The schema is docs/journal.md's; SCHEMA_VERSION changes when a
field changes meaning or goes away (new fields may come without it). Pure.

Every part a driver, servo or the command line controls is bounded (text, names, values,
lists), and a record still too long for the journal's bound has all of them cut further
by one scale, by halves down to their floors, and then its calls and rollback steps,
until it fits, and says so (`cut`); a record that still cannot fit (which the smallest
bound leaves no room for) becomes a stub: the run and its outcome only. So the line
`encode` returns always fits: the store never has to refuse it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aggregator import __version__
from aggregator.limits import (
    JOURNAL_FINAL_BYTES,
    JOURNAL_ITEMS,
    JOURNAL_ITEMS_FLOOR,
    JOURNAL_NAME_CHARS,
    JOURNAL_NAME_FLOOR_CHARS,
    JOURNAL_NOTE_CHARS,
    JOURNAL_PROGRESS_BYTES,
    JOURNAL_REQUEST_BYTES,
    JOURNAL_RESULT_BYTES,
    JOURNAL_STDERR_TAIL_BYTES,
)
from aggregator.protocol.strict_json import dumps
from aggregator.protocol.text import clip, scrub
from aggregator.protocol.vocabulary import Reason, Status
from aggregator.supervision.facts import CallFacts, RollbackStep, RunFacts

SCHEMA_VERSION = 1

#: How far the bounded parts are cut, in turn, until a record fits: whole, halves, ...
_SCALES = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.0)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rfc3339(seconds: float) -> str:
    """UTC, to the microsecond: 2026-12-06T05:37:12.123456Z."""
    whole = int(seconds)
    micros = min(999_999, round((seconds - whole) * 1_000_000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{micros:06d}Z"


def _head(text: str | None, limit: float) -> str | None:
    return None if text is None else clip(text, int(limit))


def _tail(text: str, limit: float) -> str:
    """The last `limit` characters, marked as cut when there were more."""
    keep = int(limit)
    if len(text) <= keep:
        return text
    return "..." + text[len(text) - max(0, keep - 3):] if keep > 3 else ""


def outcome(facts: RunFacts) -> tuple[str, str, str | None]:
    """The run's status, reason and message: the final line's, when it was an object
    with a status; otherwise from the exit code (--version, --check and --dry-run write
    text, --query a descriptor)."""
    result = facts.result
    if result is not None and isinstance(result.get("status"), str):
        status = str(result["status"])
        default = Reason.SUCCESS if status == Status.OK else status
        message = result.get("message")
        return (status, str(result.get("reason") or default),
                message if isinstance(message, str) else None)
    if facts.exit_code == 0:
        return Status.OK, Reason.SUCCESS, None
    return Status.FAILED, f"exit code {facts.exit_code}", None


class _Cut:
    """How much of each part a record keeps at `scale` (1: the bounds in limits.py; 0:
    their floors: a name still says which driver, a list keeps its first items)."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def text(self, text: str | None, limit: int) -> str | None:
        """The start of `text`: a line, a detail, a note (nothing but a mark at scale 0)."""
        return _head(text, limit * self.scale)

    def name(self, text: str | None) -> str | None:
        return None if text is None else clip(
            text, max(JOURNAL_NAME_FLOOR_CHARS, int(JOURNAL_NAME_CHARS * self.scale)))

    def items(self, values: Iterable[Any]) -> list[Any]:
        """The first items of a list (of names, of settings)."""
        most = max(JOURNAL_ITEMS_FLOOR, int(JOURNAL_ITEMS * self.scale))
        return [value for _, value in zip(range(most), values, strict=False)]

    def names(self, values: Iterable[str]) -> list[str | None]:
        return [self.name(value) for value in self.items(values)]

    def value(self, value: Any) -> Any:
        """A value a driver reported (a rollback's setting): as it was, or when its JSON
        is too long, the start of that JSON as a string."""
        if isinstance(value, str):
            return self.name(value)
        text = dumps(value)
        cut = self.name(text)
        return value if cut == text else cut

    def settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for key in self.items(settings):
            kept.setdefault(str(self.name(str(key))), self.value(settings[key]))
        return kept


def _call(call: CallFacts, cut: _Cut) -> dict[str, Any]:
    use = call.resource_use
    return {
        "driver": cut.name(call.driver), "call": cut.name(call.call),
        "argv": cut.names(call.argv),
        "start": round(call.start, 4), "duration": round(call.duration, 4),
        "end": str(call.end), "exit_code": call.exit_code, "signal": cut.name(call.signal),
        "status": cut.name(call.status), "reason": cut.name(call.reason),
        "detail": cut.text(call.detail, JOURNAL_NOTE_CHARS),
        "progress": {"count": call.progress_count,
                     "first": cut.text(call.first_progress, JOURNAL_PROGRESS_BYTES),
                     "last": cut.text(call.last_progress, JOURNAL_PROGRESS_BYTES)},
        "result": cut.text(call.result, JOURNAL_RESULT_BYTES),
        "result_bytes": call.result_bytes,
        "stderr": {"bytes": call.stderr_bytes,
                   "tail": _tail(call.stderr_tail, JOURNAL_STDERR_TAIL_BYTES * cut.scale)},
        "resources": None if use is None else {
            "source": use.source, "user_cpu": round(use.user_cpu, 4),
            "system_cpu": round(use.system_cpu, 4), "peak_memory": use.peak_memory},
    }


def _rollback_step(step: RollbackStep, cut: _Cut) -> dict[str, Any]:
    settings = cut.settings(step.settings)
    kept: dict[str, Any] = {
        "driver": cut.name(step.driver), "outcome": cut.name(step.outcome),
        "settings": settings, "detail": cut.text(step.detail, JOURNAL_NOTE_CHARS)}
    if len(settings) < len(step.settings):
        kept["settings_omitted"] = len(step.settings) - len(settings)
    return kept


def build(facts: RunFacts, scale: float = 1.0, calls: Sequence[CallFacts] | None = None,
          rollback: Sequence[RollbackStep] | None = None) -> dict[str, Any]:
    """The record of a finished run; `scale` (0..1) cuts its bounded parts further, and
    `calls` and `rollback` keep only those calls and rollback steps."""
    cut = _Cut(scale)
    status, reason, message = outcome(facts)
    request = facts.request
    kept = facts.calls if calls is None else calls
    steps = facts.rollback if rollback is None else rollback
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "run": facts.run_id,
        "parent_run": cut.name(facts.parent_run),
        "front_end": facts.front,
        "command": facts.command,
        "args": cut.names(facts.args),
        "app": cut.name(facts.app),
        "started": rfc3339(facts.started),
        "duration": None if facts.duration is None else round(facts.duration, 4),
        "version": __version__,
        "io_timeout": cut.name(facts.io_timeout),
        "config_digest": facts.config_digest,
        "request": None if request is None else {
            "bytes": len(request), "digest": digest(request),
            "text": cut.text(scrub(request[:JOURNAL_REQUEST_BYTES].decode("utf-8",
                                                                          "replace")),
                             JOURNAL_REQUEST_BYTES)},
        "status": cut.name(status),
        "reason": cut.name(reason),
        "message": cut.text(message, JOURNAL_NOTE_CHARS),
        "final": cut.text(facts.final, JOURNAL_FINAL_BYTES),
        "exit_code": facts.exit_code,
        "signals": [{"signal": cut.name(name), "at": round(at, 4)}
                    for name, at in cut.items(facts.signals)],
        "servo_gone": cut.name(facts.servo_gone),
        "calls": [_call(call, cut) for call in kept],
        "rollback": [_rollback_step(step, cut) for step in steps],
        "notes": [cut.text(note, JOURNAL_NOTE_CHARS) for note in cut.items(facts.notes)],
        "cut": scale < 1.0 or len(kept) < len(facts.calls) or len(steps) < len(facts.rollback),
    }
    if len(kept) < len(facts.calls):
        record["calls_omitted"] = len(facts.calls) - len(kept)
    if len(steps) < len(facts.rollback):
        record["rollback_omitted"] = len(facts.rollback) - len(steps)
    return record


#: A stub's text fields (its status and reason): enough to say how the run went.
_STUB_CHARS = 64


def stub(facts: RunFacts) -> dict[str, Any]:
    """The last resort, for a record that fits in no other way: which run it was and
    how it ended; `stub` says everything else was left out."""
    status, reason, _ = outcome(facts)
    return {"schema": SCHEMA_VERSION, "run": facts.run_id, "front_end": facts.front,
            "command": facts.command, "started": rfc3339(facts.started),
            "duration": None if facts.duration is None else round(facts.duration, 4),
            "version": __version__, "status": clip(status, _STUB_CHARS),
            "reason": clip(reason, _STUB_CHARS), "exit_code": facts.exit_code,
            "cut": True, "stub": True, "calls_omitted": len(facts.calls),
            "rollback_omitted": len(facts.rollback)}


def _line(record: dict[str, Any]) -> bytes:
    return (dumps(record) + "\n").encode("ascii")


def encode(facts: RunFacts, limit: int) -> bytes:
    """The record as one line of at most `limit` bytes (newline included): cut as far as
    it must be, a stub at the last. A ValueError for a `limit` too small for any stub
    (far below the smallest bound a journal may have)."""
    for scale in _SCALES:
        line = _line(build(facts, scale))
        if len(line) <= limit:
            return line
    calls, steps = list(facts.calls), list(facts.rollback)
    while calls or steps:  # thousands of calls: the last ones go, and the record says so
        calls, steps = calls[:len(calls) // 2], steps[:len(steps) // 2]
        line = _line(build(facts, 0.0, calls, steps))
        if len(line) <= limit:
            return line
    line = _line(stub(facts))
    if len(line) > limit:
        raise ValueError(f"a journal record cannot be cut to {limit} bytes")
    return line
