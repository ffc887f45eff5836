"""The journal's records in words, for the operator: one block per run (`--last`), one
line per run (`--history`), a record in full (`--show`).

A record is data from a file: any field may be missing or of another type (a newer
schema, a hand-edited journal), so everything here reads it defensively and shows what
is there. What drivers wrote (stderr, result lines) is shown with control characters
escaped, so that it cannot move the operator's cursor or change the terminal. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aggregator.protocol.text import clip, one_line, show_bytes, visible

_NUMBER = (int, float)


def _name(value: Any) -> str:
    """A value from the record, on one line, safe to print."""
    return visible(one_line(str(value)))


def _get(record: Mapping[str, Any], key: str, kind: type | tuple[type, ...],
         default: Any = None) -> Any:
    """record[key] if it is of `kind` (a bool is not a number here), else `default`."""
    value = record.get(key)
    if isinstance(value, bool) and kind is not bool:
        return default
    return value if isinstance(value, kind) else default


def _seconds(value: Any) -> str:
    """A duration or a time in the run; `? s` for what is not one (an integer too large
    for a float is a number too, in a hand-edited journal)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "? s"
    try:
        return f"{value:.3f} s"
    except OverflowError:
        return "? s"


def _bytes(value: Any) -> str:
    """A size: 12.3 MiB; `?` for what is not one."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "?"
    try:
        return show_bytes(value)
    except OverflowError:
        return "?"


def _when(record: Mapping[str, Any]) -> str:
    """The start, to the second: 2026-12-06T05:37:12Z."""
    started = _get(record, "started", str, "?")
    head, dot, _ = started.partition(".")
    return f"{head}Z" if dot else started


def command_line(record: Mapping[str, Any]) -> str:
    """How the run was called: `./adjust app`, `./measure --describe app`."""
    args = [str(a) for a in _get(record, "args", list, [])]
    return visible(one_line(" ".join([f"./{_get(record, 'front_end', str, '?')}", *args])))


def outcome(record: Mapping[str, Any]) -> str:
    """ok, or the status with the reason: failed (timeout)."""
    status = _name(_get(record, "status", str, "?"))
    if status == "ok":
        return "ok"
    reason = _get(record, "reason", str, "")
    return f"{status} ({_name(clip(reason))})" if reason else status


def how_it_ended(call: Mapping[str, Any]) -> str:
    """exit 0, died of SIGSEGV, timeout (died of SIGTERM), not started ..."""
    end = _get(call, "end", str, "?")
    code = _get(call, "exit_code", int)
    sig = _get(call, "signal", str)
    died = f"died of {sig}" if sig else f"exit {code}" if code is not None else ""
    if end == "exited":
        return died or "exited"
    if end == "signaled":
        return died or "died of a signal"
    if end == "not-started":
        return "not started"
    return f"{end} ({died})" if died else end


def _failed(call: Mapping[str, Any]) -> bool:
    status: str = _get(call, "status", str, "ok")
    return status != "ok"


#: A call servo-agg ended through no fault of its own (servo's cancel or terminate, or
#: another measure driver's failure), by how it ended; and the reasons of a call it never
#: started because the run was stopping.
_ENDED_BY_SERVO_AGG = ("canceled", "stopped")
_NOT_STARTED_BY_A_STOP = ("canceled", "terminated")


def failed_on_its_own(call: Mapping[str, Any]) -> bool:
    """Whether a call failed on its own account (the one test: `--history`'s failed
    drivers, the metrics file's driver failures): not one servo-agg canceled or stopped,
    or never started as the run stopped; one that could not be started (spawn-failed)
    did fail."""
    return (_failed(call) and call.get("end") not in _ENDED_BY_SERVO_AGG
            and call.get("reason") not in _NOT_STARTED_BY_A_STOP)


def _calls(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in _get(record, "calls", list, []) if isinstance(c, Mapping)]


def _verdict(call: Mapping[str, Any]) -> str:
    if not _failed(call):
        return ""
    detail = _get(call, "detail", str, "")
    status = _get(call, "status", str, "?")
    reason = _get(call, "reason", str, "?")
    return visible(clip(one_line(f"{status}/{reason}" + (f": {detail}" if detail else ""))))


def _stderr_of(call: Mapping[str, Any]) -> tuple[str, int]:
    stderr = _get(call, "stderr", Mapping, {})
    return _get(stderr, "tail", str, ""), _get(stderr, "bytes", int, 0)


def block(record: Mapping[str, Any]) -> list[str]:
    """`--last`: when, command, outcome and duration; one line per driver call (how long,
    how it ended, why); what else happened; then the stderr tail of each failed call."""
    code = _get(record, "exit_code", int)
    lines = [f"{_when(record)}  {command_line(record)}  {outcome(record)}, "
             f"exit {code if code is not None else '?'}, "
             f"{_seconds(_get(record, 'duration', _NUMBER))}  "
             f"[run {_name(_get(record, 'run', str, '?'))}]"]
    message = _get(record, "message", str)
    if message and _get(record, "status", str) != "ok":
        lines.append("  " + visible(clip(one_line(message.split("\n")[0]), 300)))
    calls = _calls(record)
    width = max((len(_name(c.get("driver"))) for c in calls), default=0)
    call_width = max((len(_name(c.get("call"))) for c in calls), default=0)
    for call in calls:
        verdict = _verdict(call)
        lines.append(f"  {_name(call.get('driver')):<{width}}  "
                     f"{_name(call.get('call')):<{call_width}}  "
                     f"{_seconds(call.get('duration')):>9}  {how_it_ended(call)}"
                     + (f"  {verdict}" if verdict else ""))
    lines += _happenings(record)
    for call in calls:
        tail, total = _stderr_of(call)
        if not _failed(call) or not tail.strip():
            continue
        kept = len(tail.encode("utf-8", "replace"))
        lines.append(f"  --- {_name(call.get('driver'))} {_name(call.get('call'))}: stderr"
                     + (f", the last {kept} of {total} bytes" if total > kept else "")
                     + " ---")
        lines += [f"  {visible(line)}" for line in tail.rstrip("\n").split("\n")]
    return lines


def _happenings(record: Mapping[str, Any]) -> list[str]:
    """Signals, servo gone, rollback steps, a cut record: one line each."""
    lines = []
    signals = [s for s in _get(record, "signals", list, []) if isinstance(s, Mapping)]
    if signals:
        lines.append("  signals: " + ", ".join(
            f"{_name(s.get('signal'))} at {_seconds(s.get('at'))}" for s in signals))
    gone = _get(record, "servo_gone", str)
    if gone:
        lines.append(f"  servo gone: {_name(gone)}")
    for step in _get(record, "rollback", list, []):
        if isinstance(step, Mapping):
            settings = _get(step, "settings", Mapping, {})
            shown = ", ".join(f"{k}={v}" for k, v in settings.items())
            detail = _get(step, "detail", str, "")
            lines.append(visible(clip(one_line(
                f"  rollback of {step.get('driver')}: {step.get('outcome')} {shown}"
                + (f" ({detail})" if detail else "")), 300)))
    if _get(record, "cut", bool, False):
        left_out = [f"{what} left out: {count}" for what, count in (
            ("calls", _get(record, "calls_omitted", int, 0)),
            ("rollback steps", _get(record, "rollback_omitted", int, 0))) if count]
        if _get(record, "stub", bool, False):
            left_out.insert(0, "only the run and its outcome were kept")
        lines.append("  (this record was cut to fit the journal's bound"
                     + "".join(f"; {part}" for part in left_out) + ")")
    return lines


def failed_drivers(record: Mapping[str, Any]) -> list[str]:
    """The drivers with a call that failed on its own account."""
    failed: list[str] = []
    for call in _calls(record):
        name = _name(call.get("driver"))
        if failed_on_its_own(call) and name not in failed:
            failed.append(name)
    return failed


def history(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """`--history`: one line per run, in columns: when it started, how long it took,
    its outcome, the command, the drivers that failed, its id."""
    rows = [(_when(r), _seconds(_get(r, "duration", _NUMBER)), outcome(r),
             clip(command_line(r), 60), ", ".join(failed_drivers(r)) or "-",
             _name(_get(r, "run", str, "?"))) for r in records]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(6)]
    return ["  ".join(cell.rjust(width) if i == 1 else cell.ljust(width)
                      for i, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in rows]


def _field(name: str, value: str) -> str:
    first, *rest = value.split("\n") or [""]
    return "\n".join([f"{name:<12}{first}", *(f"{'':<12}{line}" for line in rest)])


def full(record: Mapping[str, Any]) -> list[str]:
    """`--show`: the record in full, in words."""
    def text(key: str) -> str:
        value = record.get(key)
        return "-" if value is None else visible(str(value))

    request = _get(record, "request", Mapping)
    lines = [
        _field("run", text("run")),
        _field("command", f"{command_line(record)} ({text('command')})"),
        _field("started", text("started")),
        _field("duration", _seconds(record.get("duration"))),
        _field("outcome", f"{outcome(record)}, exit code {text('exit_code')}"),
    ]
    if record.get("parent_run"):
        lines.append(_field("parent run", text("parent_run")))
    lines += [
        _field("version", f"servo-agg {text('version')} (record schema {text('schema')})"),
        _field("io timeout", "unset" if record.get("io_timeout") is None
               else f"OPTUNE_IO_TIMEOUT={text('io_timeout')}"),
        _field("config", text("config_digest") if record.get("config_digest")
               else "no config.yaml"),
        _field("request", "none" if request is None else
               f"{request.get('bytes')} bytes, {visible(str(request.get('digest')))}\n"
               + visible(str(request.get("text")).rstrip("\n"))),
    ]
    if record.get("message"):
        lines.append(_field("message", visible(str(record.get("message")))))
    lines.append(_field("final line", text("final")))
    lines += [line[1:] if line.startswith("  ") else line for line in _happenings(record)]
    for note in _get(record, "notes", list, []):
        lines.append(_field("said", visible(str(note))))
    for number, call in enumerate(_calls(record), start=1):
        lines += _call_in_full(number, call)
    return lines


def _call_in_full(number: int, call: Mapping[str, Any]) -> list[str]:
    progress = _get(call, "progress", Mapping, {})
    tail, total = _stderr_of(call)
    used = _get(call, "resources", Mapping)
    lines = [
        "",
        _field(f"call {number}", f"{_name(call.get('driver'))} {_name(call.get('call'))}"),
        _field("  argv", _name(" ".join(str(a) for a in _get(call, "argv", list, [])))),
        _field("  time", f"from {_seconds(call.get('start'))} for "
                         f"{_seconds(call.get('duration'))}"),
        _field("  ended", f"{how_it_ended(call)}: "
                          f"{_name(call.get('status'))}/{_name(call.get('reason'))}"),
    ]
    if call.get("detail"):
        lines.append(_field("  why", visible(str(call.get("detail")))))
    lines.append(_field("  progress", f"{progress.get('count', 0)} line"
                        + ("" if progress.get("count") == 1 else "s")
                        + (f"\nfirst: {visible(str(progress.get('first')))}"
                           if progress.get("first") else "")
                        + (f"\nlast:  {visible(str(progress.get('last')))}"
                           if progress.get("last") else "")))
    if call.get("result") is not None:
        lines.append(_field("  result", f"{call.get('result_bytes')} bytes\n"
                            + visible(str(call.get("result")))))
    kept = len(tail.encode("utf-8", "replace"))
    stderr = f"{total} bytes"
    if tail:
        stderr += (f", the last {kept}" if total > kept else "") + ":\n" + visible(
            tail.rstrip("\n"))
    lines.append(_field("  stderr", stderr))
    if used is not None:
        lines.append(_field("  used", f"CPU {_seconds(used.get('user_cpu'))} user, "
                            f"{_seconds(used.get('system_cpu'))} system; peak memory "
                            f"{_bytes(used.get('peak_memory'))} ({_name(used.get('source'))})"))
    return lines
