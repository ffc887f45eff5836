"""One run's record: what the run did (supervision/facts.py) as one versioned JSON object,
one line of the journal. The schema is docs/journal.md's; SCHEMA_VERSION changes when a
field changes meaning or goes away (new fields may come without it). Pure.

Every part that grows with what drivers write is bounded already (the tail of stderr,
the result line, the first and last progress line, the request, the notes); a record
still too long for the journal's bound has those parts cut further, by halves and then
entirely, and then its calls, until it fits, and says so (`cut`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

from aggregator import __version__
from aggregator.limits import (
    JOURNAL_FINAL_BYTES,
    JOURNAL_NOTE_CHARS,
    JOURNAL_PROGRESS_BYTES,
    JOURNAL_REQUEST_BYTES,
    JOURNAL_RESULT_BYTES,
    JOURNAL_STDERR_TAIL_BYTES,
)
from aggregator.protocol.strict_json import dumps
from aggregator.protocol.text import clip, scrub
from aggregator.protocol.vocabulary import Reason, Status
from aggregator.supervision.facts import CallFacts, RunFacts

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


def _call(call: CallFacts, scale: float) -> dict[str, Any]:
    use = call.resource_use
    return {
        "driver": call.driver, "call": call.call, "argv": list(call.argv),
        "start": round(call.start, 4), "duration": round(call.duration, 4),
        "end": str(call.end), "exit_code": call.exit_code, "signal": call.signal,
        "status": call.status, "reason": call.reason,
        "detail": _head(call.detail, JOURNAL_NOTE_CHARS * scale),
        "progress": {"count": call.progress_count,
                     "first": _head(call.first_progress, JOURNAL_PROGRESS_BYTES * scale),
                     "last": _head(call.last_progress, JOURNAL_PROGRESS_BYTES * scale)},
        "result": _head(call.result, JOURNAL_RESULT_BYTES * scale),
        "result_bytes": call.result_bytes,
        "stderr": {"bytes": call.stderr_bytes,
                   "tail": _tail(call.stderr_tail, JOURNAL_STDERR_TAIL_BYTES * scale)},
        "resources": None if use is None else {
            "source": use.source, "user_cpu": round(use.user_cpu, 4),
            "system_cpu": round(use.system_cpu, 4), "peak_memory": use.peak_memory},
    }


def build(facts: RunFacts, scale: float = 1.0,
          calls: Sequence[CallFacts] | None = None) -> dict[str, Any]:
    """The record of a finished run; `scale` (0..1) cuts its bounded parts further, and
    `calls` keeps only those calls."""
    status, reason, message = outcome(facts)
    request = facts.request
    kept = facts.calls if calls is None else calls
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "run": facts.run_id,
        "parent_run": facts.parent_run,
        "front_end": facts.front,
        "command": facts.command,
        "args": list(facts.args),
        "app": facts.app,
        "started": rfc3339(facts.started),
        "duration": None if facts.duration is None else round(facts.duration, 4),
        "version": __version__,
        "io_timeout": facts.io_timeout,
        "config_digest": facts.config_digest,
        "request": None if request is None else {
            "bytes": len(request), "digest": digest(request),
            "text": _head(scrub(request[:JOURNAL_REQUEST_BYTES].decode("utf-8", "replace")),
                          JOURNAL_REQUEST_BYTES * scale)},
        "status": status,
        "reason": reason,
        "message": _head(message, JOURNAL_NOTE_CHARS * scale),
        "final": _head(facts.final, JOURNAL_FINAL_BYTES * scale),
        "exit_code": facts.exit_code,
        "signals": [{"signal": name, "at": round(at, 4)} for name, at in facts.signals],
        "servo_gone": facts.servo_gone,
        "calls": [_call(call, scale) for call in kept],
        "rollback": [{"driver": step.driver, "outcome": step.outcome,
                      "settings": dict(step.settings),
                      "detail": _head(step.detail, JOURNAL_NOTE_CHARS * scale)}
                     for step in facts.rollback],
        "notes": [_head(note, JOURNAL_NOTE_CHARS * scale) for note in facts.notes],
        "cut": scale < 1.0 or len(kept) < len(facts.calls),
    }
    if len(kept) < len(facts.calls):
        record["calls_omitted"] = len(facts.calls) - len(kept)
    return record


def encode(facts: RunFacts, limit: int) -> bytes:
    """The record as one line of at most `limit` bytes (newline included)."""
    line = b""
    for scale in _SCALES:
        line = (dumps(build(facts, scale)) + "\n").encode("ascii")
        if len(line) <= limit:
            return line
    calls = list(facts.calls)
    while calls:  # thousands of calls: the last ones go, and the record says how many
        calls = calls[:len(calls) // 2]
        line = (dumps(build(facts, 0.0, calls)) + "\n").encode("ascii")
        if len(line) <= limit:
            return line
    return line  # only a run without calls can get here, and it is small
