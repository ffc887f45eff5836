"""Entry point: stdio made safe, `--info` answered at once, everything else handed to the
trio app.

This module imports nothing heavy (not even typing, which loads re), so `adjust --info`
stays as cheap as Python's start.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from typing import NoReturn

#: The options that read the journal instead of running drivers (entry/readers.py).
_READERS = ("--last", "--show", "--history")

#: Each standard fd, the mode it is reopened in when closed, and its sys attribute.
_STDIO = ((0, os.O_RDONLY, "stdin"), (1, os.O_WRONLY, "stdout"), (2, os.O_WRONLY, "stderr"))


def _hold_fd(fd: int, mode: int) -> None:
    """Put /dev/null (or, without it, a pipe's matching end) on the closed `fd`."""
    try:
        held = os.open(os.devnull, mode)
    except OSError:
        read_end, write_end = os.pipe()  # reads see EOF; writes fail with EPIPE
        held, other = (read_end, write_end) if mode == os.O_RDONLY else (write_end, read_end)
        os.close(other)
    if held != fd:
        os.dup2(held, fd)
        os.close(held)
    os.set_inheritable(fd, True)


def open_closed_stdio() -> frozenset[int]:
    """Make sure fds 0, 1 and 2 are open; the ones that were closed at start.

    Called before anything opens a file: a pipe or file opened later would otherwise land
    on a closed standard fd and be taken for it (the sentinel's pipe on fd 0 or 2 was
    overwritten, disabling the SIGKILL guard; a note meant for stderr went to stdout).
    Python sets sys.stdin/stdout/stderr to None for a closed fd; they are made again.
    """
    closed = set()
    for fd, mode, name in _STDIO:
        try:
            os.fstat(fd)
        except OSError:
            _hold_fd(fd, mode)
            closed.add(fd)
        if getattr(sys, name) is None:
            closed.add(fd)  # closed when Python started: whatever is on it is not servo's
            stream = open(fd, "r" if fd == 0 else "w", encoding="utf-8",  # noqa: SIM115
                          errors="backslashreplace", closefd=False)  # sys owns it now
            setattr(sys, name, stream)
    return frozenset(closed)


def stdout_closed_note() -> None:
    """What --info and the readers say when nothing can reach servo (stdout closed):
    on stderr, if open. They keep no record; every other command is refused by
    launch.run, which records it."""
    from aggregator.protocol.errors import STDOUT_CLOSED

    try:
        sys.stderr.write(f"servo-agg: error (bad-stdio): {STDOUT_CLOSED}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None, program: str | None = None) -> int:
    """`adjust ...` or `measure ...`, by the name it is run under (or `servo-agg adjust|
    measure ...`)."""
    closed = open_closed_stdio()  # first: before anything opens a file
    servo_pid = os.getppid()  # servo, taken as early as can be: it may exit without a word
    from aggregator.root.layout import front_end_name

    called = os.path.basename(program or sys.argv[0])
    given = sys.argv[1:] if argv is None else argv
    front, args = front_end_name(called, given)
    reader = any(arg.partition("=")[0] in _READERS for arg in args)
    if 1 in closed and ("--info" in args or reader):  # they write no record: just say so
        stdout_closed_note()
        return 1
    if "--info" in args:  # the one place that answers it: before anything else loads
        from aggregator.entry.info import print_info

        return print_info(front)
    from aggregator.root.front_end import FrontEnd

    if reader:  # before trio, as --info
        from aggregator.entry.readers import read_journal

        return read_journal(args, FrontEnd(front))
    from aggregator.entry.launch import run

    # --help names the program as called: adjust, measure, servo-agg (measure)
    shown = called if len(args) == len(given) else f"{called} {front}"
    return run(args, FrontEnd(front), stdin_closed=0 in closed,
               stdout_closed=1 in closed, servo_pid=servo_pid, program=shown)


def exit_now(code: int) -> NoReturn:
    """Flush and leave without interpreter teardown (~20 ms, paid on every servo call).

    Safe because by now every driver has been reaped and every line written.
    """
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib would cost --info 4 ms of imports
            stream.flush()
        except (OSError, ValueError, AttributeError):  # /dev/full, closed, None
            pass
    os._exit(code)


def console_main() -> NoReturn:
    """bin/servo-agg, the installed command: no launcher of a servo root's own around it."""
    exit_now(main())
