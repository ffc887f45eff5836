"""The aggregator's own stdout (servo's channel) and stderr (for people).

Writing to servo must never stop supervision: a servo that does not read, a stdout that
is full, non-blocking or closed must not hold the thread that times drivers out and
handles signals. So stdout is written non-blocking, on a file description of our own
where the system gives one (servo's own flags stay as they are). Under trio, a line is
written at once as far as stdout takes it without waiting; what it cannot take goes into
a queue that the channel's writer task (channel.py) drains when stdout has room again.
Meanwhile a newer progress line replaces one still waiting; no other line is dropped.
Outside trio (an error before the run, --check's report after it) a line is written at
once, waiting for stdout with poll(). All waiting for servo to read at the end shares
one bound, FINAL_WRITE_SECONDS. Trio-free: it is made before trio loads.
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TextIO

from aggregator.limits import (
    FINAL_WRITE_SECONDS,
    JOURNAL_FINAL_BYTES,
    JOURNAL_NOTE_CHARS,
    JOURNAL_NOTES,
)
from aggregator.process.linux import process_age
from aggregator.protocol.environment import servo_posts_stderr
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.strict_json import dumps, utf8
from aggregator.protocol.text import clip, clip_message, visible


class Overlay(Protocol):
    """Something drawn on stderr in place (the live display) that notes must not tear."""

    def clear(self) -> None: ...
    def draw(self) -> None: ...


def own_description(fd: int = 1, *, terminals: bool = True) -> tuple[int, bool]:
    """A file description of our own for `fd` (a pipe, FIFO or, with `terminals`, a
    terminal), opened non-blocking; else `fd` itself. Returns the fd to write to and
    whether it is ours.

    Opening /proc/self/fd/N gives a new open file description, so O_NONBLOCK on it leaves
    servo's (or a shell's, for a terminal) as it is. Regular files are not reopened
    (that would write from offset 0) and need no care: they never make a writer wait.
    """
    try:
        kind = os.fstat(fd).st_mode
    except OSError:
        return fd, False
    if not (stat.S_ISFIFO(kind) or (terminals and stat.S_ISCHR(kind))):
        return fd, False  # a file (never waits) or a socket (cannot be reopened)
    try:
        # O_NOCTTY: a terminal is never made ours (Linux already refuses that to a
        # write-only open; older kernels did not)
        flags = os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
        return os.open(f"/proc/self/fd/{fd}", flags), True
    except OSError:
        return fd, False


class StderrLines:
    """Our lines for people on stderr when stderr is a pipe (servo's): written through a
    non-blocking file description of our own, each line whole or not at all. servo reads
    stderr in the same loop as stdout, so when it stops reading (a slow request to the
    optimizer) a line that does not fit is dropped and counted, never waited for: stderr
    must not stall supervision any more than stdout may. A terminal or a file keeps the
    blocking stream (`for_fd` returns None for those)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.dropped = 0  # lines that did not fit
        self._pending: list[str] = []

    @classmethod
    def for_fd(cls, fd: int = 2) -> StderrLines | None:
        own, owned = own_description(fd, terminals=False)
        return cls(own) if owned else None

    def write(self, text: str) -> int:
        self._pending.append(text)
        return len(text)

    def flush(self) -> None:
        """What was written since the last flush, in one write (print flushes per line)."""
        data = utf8("".join(self._pending))
        self._pending.clear()
        if not data:
            return
        try:
            written = os.write(self.fd, data)
        except BlockingIOError:
            self.dropped += 1
            return
        if written < len(data):  # only a line longer than PIPE_BUF can be cut
            self.dropped += 1
            with contextlib.suppress(OSError):
                os.write(self.fd, b"\n")

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class ServoProcess:
    """servo itself, our parent when we started: on SIGTERM it exits at once without a word
    to its driver, so a pidfd on it is how its exit is noticed while drivers are silent.
    `pidfd` is None when servo was already gone (`gone`) or cannot be watched."""

    def __init__(self, pid: int, pidfd: int | None = None, *, gone: bool = False) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.gone = gone

    @classmethod
    def watch(cls, pid: int) -> ServoProcess | None:
        """servo as `pid` (os.getppid() at our start); None where there is nothing to
        watch: no parent but init, or no pidfd here."""
        if pid <= 1 or not hasattr(os, "pidfd_open"):
            return None
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return cls(pid, gone=True)
        except OSError:  # kernel before 5.3, or not permitted
            return None
        if os.getppid() != pid:  # it exited before the pidfd was taken: the pid may be reused
            os.close(pidfd)
            return cls(pid, gone=True)
        return cls(pid, pidfd)

    def close(self) -> None:
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = None


class Output:
    """servo's channel: each stdout line written whole and in order, the sync API kept
    for every caller; remembers when it last wrote, which is when servo's patience with
    our silence started again."""

    def __init__(self, stdout_fd: int = 1, stderr: TextIO | StderrLines | None = None,
                 clock: Callable[[], float] = time.monotonic, *, owns_fd: bool = False,
                 servo: ServoProcess | None = None, stderr_posted: bool = False) -> None:
        self.fd = stdout_fd
        self._owns_fd = owns_fd
        self.servo = servo  # watched by the channel under trio
        self._stderr = stderr if stderr is not None else sys.stderr
        #: servo adds our stderr to the message it posts for a failed command (a pipe, and
        #: OPTUNE_VERBOSE_STDERR all or minimal): the error line must not repeat the message
        self.stderr_posted = stderr_posted
        #: -v: every note stamped with seconds since this monotonic time (our start)
        self.stamped_since: float | None = None
        self._clock = clock
        # servo's clock started when it started us, interpreter start-up included
        self.last_write = clock() - process_age()
        self.last_line: str | None = None  # the newest line servo was given (the relay's
        # repeats of it are not worth a request to the optimizer)
        #: the last line's object, if json_line wrote it: the run's own verdict, kept for
        #: the record whether or not servo's end was still open (servo_gone says so)
        self.last_object: dict[str, Any] | None = None
        #: the head of the last line written, any kind, while servo's end was open (what
        #: servo got last: the run's record keeps it as the final line)
        self.last_sent: str | None = None
        #: what was said on stderr for people (not -v's trace), for the run's record: the
        #: first JOURNAL_NOTES, each cut to JOURNAL_NOTE_CHARS
        self.said: list[str] = []
        self.closed = False  # servo went away: keep supervising, stop writing
        self.lost: str | None = None  # why lines could not be written, once one could not
        self.overlay: Overlay | None = None
        self._stdout_shares_terminal = os.isatty(stdout_fd)  # lines there tear the overlay
        #: seconds left, in all, to wait for servo to read at the end (FINAL_WRITE_SECONDS)
        self.patience_left = FINAL_WRITE_SECONDS
        self._queue: deque[_Line] = deque()
        self._waiting_progress: _Line | None = None  # the one progress line queued, if any
        self._wake: Callable[[], None] | None = None  # the writer's, while it runs
        self._gone: Callable[[str], None] | None = None
        self._busy = False  # the writer is writing a line it took
        self.superseded = 0  # progress lines replaced by newer ones before servo read them
        self._was_blocking = False
        with contextlib.suppress(OSError):  # e.g. fd -1 in tests, a closed fd
            self._was_blocking = os.get_blocking(stdout_fd)
            if self._was_blocking:  # servo's own description: restored by close()
                os.set_blocking(stdout_fd, False)

    @classmethod
    def for_servo(cls, servo_pid: int | None = None) -> Output:
        """The channel to servo on fd 1, on a file description of its own if it can; and
        servo itself (our parent at start, `servo_pid`), watched while the run goes on."""
        fd, owned = own_description(1)
        servo = ServoProcess.watch(servo_pid) if servo_pid is not None else None
        stderr = StderrLines.for_fd(2)  # a pipe, as servo's is; None for a terminal or file
        posted = stderr is not None and servo_posts_stderr(
            os.environ.get("OPTUNE_VERBOSE_STDERR"))
        return cls(fd, stderr, owns_fd=owned, servo=servo, stderr_posted=posted)

    def close(self) -> None:
        """Give back what was borrowed: servo's description blocking again, ours closed."""
        if self.servo is not None:
            self.servo.close()
        if isinstance(self._stderr, StderrLines):
            self._stderr.close()
        with contextlib.suppress(OSError):
            if self._owns_fd:
                os.close(self.fd)
            elif self._was_blocking:
                os.set_blocking(self.fd, True)

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Measure from now on with `clock` (trio's, once the run is under trio)."""
        silent = self._clock() - self.last_write
        self._clock = clock
        self.last_write = clock() - silent

    def silent_for(self) -> float:
        """Seconds since servo last heard from us."""
        return self._clock() - self.last_write

    # -- lines -----------------------------------------------------------------------
    def write_line(self, text: str, *, progress: bool = False) -> None:
        """One line to servo (or several whole ones). While stdout is full a progress line
        may be replaced by a newer one; any other line is written, whatever comes after."""
        # a lone surrogate (e.g. from a file name) cannot break it
        self._send(utf8(text + "\n"), progress, text.rpartition("\n")[2])
        self.last_object = None

    def report(self, lines: Iterable[str]) -> None:
        """A text report for people on stdout (--version, --check, --dry-run): each line
        stays one line, and what a driver or a file name put in it cannot reach the
        terminal raw."""
        for line in lines:
            self.write_line(visible(line, newlines=False))

    def json_line(self, obj: dict[str, Any]) -> None:
        """`obj` as one line of strict JSON (no NaN or Infinity, no lone surrogate). A
        measure result may be tens of MB: its text is a temporary, dropped once encoded,
        so no more than two copies of the line exist at once."""
        progress = "progress" in obj
        data = (dumps(obj) + "\n").encode("ascii")  # dumps writes ASCII only
        # only a progress line is ever compared with the last one (the relay's repeats)
        self._send(data, progress, data[:-1].decode("ascii") if progress else None)
        self.last_object = obj

    def _send(self, data: bytes, progress: bool, text: str | None) -> None:
        self.last_write = self._clock()
        self.last_line = text
        if self.closed:
            return
        self.transmit(data, progress)
        if not self.closed:  # this very write may have found servo's end closed
            # For the run's record, the start of the line servo got last (a measure
            # result may be tens of MB: only a bounded head of it is kept).
            self.last_sent = data[:JOURNAL_FINAL_BYTES + 1].decode(
                "utf-8", "replace").rstrip("\n")

    def transmit(self, data: bytes, progress: bool) -> None:
        """Whole lines on their way, each with its newline (the seam test doubles replace
        to keep lines instead)."""
        if self._wake is None:
            self._write_now(data)
        elif self._queue or self._busy:  # the writer is waiting for stdout: queue it
            self._enqueue(_Line(data, progress))
        else:  # under trio, nothing waiting: as much as stdout takes now, never waiting
            overlay = self.overlay if self._stdout_shares_terminal else None
            if overlay is not None:
                overlay.clear()
            try:
                written = os.write(self.fd, data)  # the usual case: one call, all of it
            except (BlockingIOError, InterruptedError):
                written = 0
            except OSError as exc:
                self.fail(stdout_failure(exc))
                return
            if written == len(data):
                if overlay is not None:
                    overlay.draw()
            else:  # stdout is full: the writer does the rest (whole, if none went out)
                self._enqueue(_Line(data, progress) if not written
                              else _Line(data[written:], False))

    def _enqueue(self, line: _Line) -> None:
        if line.progress:
            if self._waiting_progress is not None:
                self._queue.remove(self._waiting_progress)
                self.superseded += 1
            self._waiting_progress = line
        self._queue.append(line)
        assert self._wake is not None
        self._wake()

    def _write_some(self, view: memoryview) -> memoryview:
        """Write what stdout takes without waiting; the rest (empty once stdout failed)."""
        while view and not self.closed:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as exc:
                self.fail(stdout_failure(exc))
                return view[:0]
        return view

    def _write_now(self, data: bytes | memoryview) -> None:
        """Outside trio: write now, waiting with poll() while stdout is full, within what
        is left of FINAL_WRITE_SECONDS."""
        view = memoryview(data)
        self.line_begins()
        while (view := self._write_some(view)) and not self.closed:
            if self.patience_left <= 0:
                self.lose("servo did not read the last lines of stdout in time "
                          f"({FINAL_WRITE_SECONDS:g} s)", dropped=1)
                break
            started = time.monotonic()
            poller = select.poll()
            poller.register(self.fd, select.POLLOUT)
            poller.poll(self.patience_left * 1000)
            self.patience_left -= time.monotonic() - started
        self.line_ends()

    # -- the writer's side (channel.py) ------------------------------------------------
    def attach(self, wake: Callable[[], None], gone: Callable[[str], None]) -> None:
        """From now on lines that stdout cannot take at once are queued for the writer,
        which `wake` wakes; `gone` is told when stdout fails (servo is gone)."""
        self._wake = wake
        self._gone = gone

    def detach(self, unfinished: memoryview | None = None) -> None:
        """The writer stops: the rest of the line it was writing, and what is still
        queued, are written the plain way (bounded), so that none is lost."""
        self._wake = None
        self._gone = None
        self._busy = False
        pending = [unfinished] if unfinished else []
        pending.extend(memoryview(line.data) for line in self._queue)
        self._queue.clear()
        self._waiting_progress = None
        for data in pending:
            self._write_now(data)

    def take(self) -> bytes | None:
        """The next line for the writer, oldest first; None when none is waiting. The
        writer owns it until line_ends()."""
        if not self._queue:
            return None
        line = self._queue.popleft()
        if line is self._waiting_progress:
            self._waiting_progress = None
        self._busy = True
        return line.data

    def line_begins(self) -> None:
        if self.overlay is not None and self._stdout_shares_terminal:
            self.overlay.clear()

    def line_ends(self) -> None:
        self._busy = False
        if self.overlay is not None and self._stdout_shares_terminal:
            self.overlay.draw()

    def fail(self, why: str) -> None:
        """stdout failed (EPIPE, /dev/full): under trio servo is gone and the run stops."""
        if self._gone is not None:
            self._gone(why)  # the channel's: it stops the run, and calls lose()
        self.lose(why)

    def lose(self, why: str, dropped: int = 0) -> None:
        """stdout cannot take lines any more: say so once, on stderr, and stop writing."""
        self.closed = True
        self._busy = False
        dropped += len(self._queue)
        self._queue.clear()
        self._waiting_progress = None
        if self.lost is None:
            self.lost = why
            unsent = f" ({dropped} line{'s' if dropped != 1 else ''} not written)" \
                if dropped else ""
            self.note(f"{why}: nothing more reaches servo{unsent}")

    # -- people ------------------------------------------------------------------------
    def stamp_notes(self) -> None:
        """-v: from now on every note says when, in seconds since the process started
        (interpreter start-up included, as servo counts), on the monotonic clock."""
        self.stamped_since = time.monotonic() - process_age()

    def note(self, text: str, *, trace: bool = False) -> None:
        """One readable line on stderr; never used as a heartbeat. Kept for the run's
        record unless it is `-v`'s `trace`."""
        if not trace and len(self.said) < JOURNAL_NOTES:
            self.said.append(clip(text, JOURNAL_NOTE_CHARS))
        with contextlib.suppress(OSError, ValueError):  # EPIPE, /dev/full, closed
            if self.overlay is not None:
                self.overlay.clear()
            stamp = ("" if self.stamped_since is None
                     else f"[{time.monotonic() - self.stamped_since:7.3f}] ")
            print(f"servo-agg: {stamp}{visible(text)}", file=self._stderr, flush=True)
            if self.overlay is not None:
                self.overlay.draw()

    def warn(self, text: str) -> None:
        """Something a person must fix though the run goes on (a program without its
        execute bit, a section name that looks like a typo): a note, which the run's
        record keeps with the others."""
        self.note(f"warning: {text}")

    def error(self, err: AggregatorError) -> None:
        """A command-ending error: one JSON line on stdout and one readable line on stderr."""
        result = err.as_result()
        result["message"] = clip_message(err.message)
        self.failure(result, f"error ({err.reason})", err.message)

    def failure(self, result: Mapping[str, Any], label: str, summary: str) -> None:
        """The final line of a command that did not succeed, and its line for people:
        `servo-agg: <label>: <summary>`. When servo posts our stderr after the message
        (stderr_posted), the summary would be said twice to the optimizer: the line then
        only points at the message, so that the text servo posts holds each fact once. A
        person at a terminal, a file, or OPTUNE_VERBOSE_STDERR=none get the summary."""
        self.json_line(dict(result))
        posted = self.stderr_posted and not self.closed  # nothing posted once servo is gone
        self.note(f"{label}: " + (POSTED_POINTER if posted else summary))


#: The line for people when servo posts our stderr: the message says it all already.
POSTED_POINTER = "the final line on stdout says what and why"


class _Line:
    """A queued stdout line (compared by identity: two equal lines are two lines)."""

    __slots__ = ("data", "progress")

    def __init__(self, data: bytes, progress: bool) -> None:
        self.data = data
        self.progress = progress


def stdout_failure(exc: OSError) -> str:
    """Why stdout took no more, in words (the note and, under trio, the stop's cause)."""
    if isinstance(exc, BrokenPipeError):
        return "servo's end of stdout was closed (EPIPE)"
    return f"writing to stdout failed ({exc.strerror or exc})"


def wants_live_display(stream: TextIO, env: Mapping[str, str]) -> bool:
    """Only on a real terminal that understands cursor movement."""
    try:
        is_tty = stream.isatty()
    except (ValueError, OSError):
        return False
    return is_tty and env.get("TERM", "") not in ("", "dumb")
