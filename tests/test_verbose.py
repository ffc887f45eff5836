"""-v/--verbose (lines exchanged, per-driver timing) and the live display on a terminal."""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import struct
import subprocess
import termios
from pathlib import Path
from typing import Any

import pytest
import trio

from aggregator.entry import launch
from aggregator.entry.cli import main
from aggregator.entry.cmdline import build_parser
from aggregator.root.front_end import FrontEnd
from aggregator.supervision.display import Display, LiveDisplay
from aggregator.supervision.output import wants_live_display
from tests.support import (
    ADJUST,
    adjust_env,
    launch_before_trio,
    run_adjust,
    simple_driver,
    write_driver,
)

REQUEST = json.dumps({"application": {"components": {
    "web": {"settings": {"cpu": {"value": 2}}},
    "cache": {"settings": {"size": {"value": 128}}}}}})


def two_drivers(root: Path) -> None:
    write_driver(root, "01web", simple_driver(
        "web", {"cpu": {"value": 1, "min": 0, "max": 4}}, version="w1"))
    write_driver(root, "02cache", simple_driver(
        "cache", {"size": {"value": 64, "min": 16, "max": 256}}, version="c1"))


# -- -v -----------------------------------------------------------------------------------

@pytest.mark.e2e
async def test_verbose_traces_every_line_and_times_each_driver_and_quiet_says_nothing(
        servo_root: Path, tag: str) -> None:
    two_drivers(servo_root)
    # without -v, with a TERM as servo's environment may have: stderr is a pipe, as
    # under servo, so no live display either
    quiet = await run_adjust(servo_root, "app", tag=tag, stdin=REQUEST,
                             env=adjust_env(tag, TERM="xterm"))
    run = await run_adjust(servo_root, "-v", "app", tag=tag, stdin=REQUEST)
    assert run.returncode == quiet.returncode == 0, run.stderr
    assert [json.loads(x) for x in run.lines] == [json.loads(x) for x in quiet.lines]
    assert quiet.stderr == ""
    err = run.stderr
    assert re.search(r"01web: \$ \S+/adjust.d/01web --query app\n", err)
    assert re.search(r"01web: \$ \S+/adjust.d/01web app  \(stdin: .*\"cpu\": \{\"value\": 2\}",
                     err)
    assert '01web: <- {"progress": 33, "message": "step 0"}' in err
    assert '02cache: <- {"status": "ok", "reason": "success"}' in err
    assert re.search(r"02cache: exit 0 after \d+\.\d{3} s", err)
    # every line stamped, from the process's start (interpreter start-up included)
    stamps = [re.match(r"servo-agg: \[ *(\d+\.\d{3})\] ", line) for line in err.splitlines()]
    assert all(stamps), err
    times = [float(m.group(1)) for m in stamps if m]
    assert times == sorted(times) and times[0] > 0.01, times
    assert re.match(r"servo-agg: \[ *\d+\.\d{3}\] if servo-agg is SIGKILLed: ", err)
    assert re.search(r"timing: 01web: query \d+\.\d{3} s, adjust \d+\.\d{3} s\n", err)
    assert re.search(r"timing: 02cache: query \d+\.\d{3} s, adjust \d+\.\d{3} s\n", err)
    assert "\x1b[" not in err  # stderr is a pipe here, as under servo: no live display


@pytest.mark.unit
@pytest.mark.parametrize("flag", ["-v", "--verbose"])
def test_verbose_is_either_flag_with_any_command(flag: str) -> None:
    """(What -v traces for the --info calls of --version and --check, each driver's info
    time, through ./adjust: test_check.py's test_healthy_root.)"""
    for argv in ([flag, "app"], ["--version", flag], ["--check", flag, "app"]):
        assert build_parser().parse_args(argv).verbose is True, argv
    assert build_parser().parse_args(["--version"]).verbose is False


# -- the live display on a real terminal (a pty) ------------------------------------------

def screen(data: str, columns: int = 100) -> list[str]:
    """What a terminal shows after `data`: the few controls the display uses, and wrapping
    (so a block line that wrapped would throw the redraw off and show up here)."""
    lines: list[list[str]] = [[]]
    row = col = 0
    pattern = re.compile(r"\x1b\[(\d*)([A-Za-z])|\r|\n|[^\x1b\r\n]")
    for match in pattern.finditer(data):
        token = match.group(0)
        if token == "\r":
            col = 0
        elif token == "\n":
            row += 1
            while len(lines) <= row:
                lines.append([])
        elif match.group(2) == "F":
            row, col = max(0, row - int(match.group(1) or 1)), 0
        elif match.group(2) == "K":
            lines[row] = []
        elif match.group(2) == "J":
            del lines[row][col:]
            del lines[row + 1:]
        elif match.group(2):
            raise AssertionError(f"unexpected control {token!r}")
        else:
            if col == columns:  # the terminal wraps a long line onto the next row
                row, col = row + 1, 0
                while len(lines) <= row:
                    lines.append([])
            line = lines[row]
            line.extend(" " * (col - len(line)))
            if col < len(line):
                line[col] = token
            else:
                line.append(token)
            col += 1
    return ["".join(chars).rstrip() for chars in lines]


async def run_on_terminal(root: Path, *args: str, tag: str, stdin: str,
                          columns: int = 100) -> tuple[int, list[str], str]:
    """./adjust with stderr on a pty (stdout still a pipe); returns (code, stdout, stderr)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = adjust_env(tag, TERM="xterm")
    try:
        proc = await trio.lowlevel.open_process(
            [str(ADJUST), *args], cwd=root, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=slave)
    finally:
        os.close(slave)
    assert proc.stdin and proc.stdout
    out, err = bytearray(), bytearray()

    async def read_terminal() -> None:
        async with trio.lowlevel.FdStream(master) as stream:
            while True:
                try:
                    chunk = await stream.receive_some(1 << 16)
                except trio.BrokenResourceError:  # EIO: the last slave end closed
                    return
                if not chunk:
                    return
                err.extend(chunk)

    async def read_stdout() -> None:
        while chunk := await proc.stdout.receive_some(1 << 16):  # type: ignore[union-attr]
            out.extend(chunk)

    try:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_terminal)
                nursery.start_soon(read_stdout)
                await proc.stdin.send_all(stdin.encode())
                await proc.stdin.aclose()
                await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode().splitlines(), err.decode("utf-8", "replace")


@pytest.mark.e2e
async def test_live_display_on_a_terminal(servo_root: Path, tag: str) -> None:
    two_drivers(servo_root)
    write_driver(servo_root, "03db", simple_driver("db", {"pool": {"value": 1}}))
    code, stdout, stderr = await run_on_terminal(servo_root, "app", tag=tag, stdin=REQUEST)
    assert code == 0, stderr
    # servo's channel is untouched: JSON lines only.
    assert json.loads(stdout[-1]) == {"status": "ok", "reason": "success"}
    assert all("progress" in json.loads(line) for line in stdout[:-1])
    assert "\x1b[" in stderr
    shown = [line for line in screen(stderr) if line]
    assert shown[0] == "servo-agg: adjusting app: 2 drivers to run (on_failure: continue)"
    # the block was redrawn in place, never repeated, and gave way to a line per driver
    assert len(shown) == 3, shown
    assert re.fullmatch(r"  01web    done after \d+\.\d s", shown[1])
    assert re.fullmatch(r"  02cache  done after \d+\.\d s", shown[2])


@pytest.mark.e2e
async def test_live_display_with_verbose_keeps_notes_above_it(servo_root: Path,
                                                              tag: str) -> None:
    two_drivers(servo_root)
    write_driver(servo_root, "02cache", """
        case "$1" in --query)
            echo '{"application": {"components": {"cache": {"settings": {"size": {"value": 64}}}}}}'
            exit 0;;
        esac
        cat > /dev/null
        echo '{"progress": 40, "message": "evicting"}'
        echo '{"status": "failed", "reason": "full", "message": "disk full"}'
        exit 1
    """, shebang="#!/bin/sh")
    code, _, stderr = await run_on_terminal(servo_root, "-v", "app", tag=tag,
                                            stdin=REQUEST, columns=80)
    assert code == 1
    shown = [line for line in screen(stderr, columns=80) if line]
    at = next(i for i, line in enumerate(shown) if line.startswith("  01web  "))
    summary = shown[at:at + 2]  # one line per driver, whole, where the block was
    assert re.fullmatch(r"  01web    done after \d+\.\d s", summary[0])
    assert re.fullmatch(r"  02cache  FAILED after \d+\.\d s: adjust: disk full "
                        r"\(exit code 1\)", summary[1])
    assert any("01web: <- " in line for line in shown[:at])  # traces scrolled above it
    after = shown[at + 2:]  # the run's summary comes below the final block
    assert re.match(r"servo-agg: \[ *\d+\.\d{3}\] error \(full\): 02cache: failed: adjust: "
                    "disk full", after[0]), after
    assert any(re.match(r"servo-agg: \[ *\d+\.\d{3}\] timing: 01web: query ", line)
               for line in after)
    assert not any("[####" in line for line in shown)  # no block left over


@pytest.mark.unit
@pytest.mark.parametrize(("front", "argv", "shown"), [
    (FrontEnd.ADJUST, ["app"], True), (FrontEnd.MEASURE, ["app"], True),
    (FrontEnd.ADJUST, ["--query", "app"], False), (FrontEnd.ADJUST, ["--dry-run", "app"], False),
    (FrontEnd.ADJUST, ["--version"], False), (FrontEnd.MEASURE, ["--describe", "app"], False),
    (FrontEnd.MEASURE, ["--dry-run", "app"], False)])
def test_only_a_command_that_runs_the_drivers_has_a_live_display(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, front: FrontEnd, argv: list[str],
        shown: bool) -> None:
    """On a terminal (wants_live_display's, below), as the launch makes the command's Run:
    the queries and describes before an adjust or a measure are shown as part of it, and
    a command made of them alone has nothing to show. (A Run made without one draws
    nothing, through ./adjust: the quiet run of
    test_verbose_traces_every_line_and_times_each_driver_and_quiet_says_nothing.)"""
    monkeypatch.setattr(launch, "wants_live_display", lambda stream, env: True)
    request = REQUEST if front is FrontEnd.ADJUST else '{"metrics": []}'
    launched = launch_before_trio(tmp_path, argv, front, request.encode())
    assert launched.run is not None, launched.stderr
    assert launched.run["live_display"] is shown


# -- the display as a unit ------------------------------------------------------------------

class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.unit
def test_wants_live_display() -> None:
    assert wants_live_display(FakeTerminal(), {"TERM": "xterm-256color"})
    assert not wants_live_display(FakeTerminal(), {"TERM": "dumb"})
    assert not wants_live_display(FakeTerminal(), {})
    assert not wants_live_display(io.StringIO(), {"TERM": "xterm"})


@pytest.mark.unit
def test_a_progress_flood_is_drawn_a_few_times() -> None:
    now = [0.0]
    term = FakeTerminal()
    display = LiveDisplay(term, clock=lambda: now[0], width=80)
    display.begin("header", ["01a"])
    display.started("01a")
    draws_before = term.getvalue().count("\x1b[J")
    for i in range(1000):
        now[0] += 0.001  # 1000 lines in one second
        display.progress("01a", {"progress": i / 10, "message": f"line {i}"})
    draws = term.getvalue().count("\x1b[J") - draws_before
    assert 5 <= draws <= 11
    display.finished("01a", True)
    assert display.render() == ["  01a [####################] 100%  done 1.0 s"]


@pytest.mark.unit
def test_rows_are_cut_to_the_terminal_width() -> None:
    display = LiveDisplay(FakeTerminal(), clock=lambda: 0.0, width=40)
    display.begin("h", ["01-a-rather-long-driver-name"])
    display.started("01-a-rather-long-driver-name")
    display.progress("01-a-rather-long-driver-name", {"progress": 50, "message": "x" * 200})
    assert all(len(line) <= 39 for line in display.render())


@pytest.mark.unit
def test_rollback_and_not_started_states() -> None:
    display = LiveDisplay(FakeTerminal(), clock=lambda: 0.0, width=100)
    display.begin("h", ["01a", "02b", "03c"])
    display.started("01a")
    display.finished("01a", True)
    display.started("02b")
    display.progress("02b", {"progress": 30})
    display.finished("02b", False, "adjust: boom\nmore")
    display.started("01a", "rollback")
    display.progress("01a", {"progress": 10, "message": "undoing"})
    rows = display.render()
    assert "100%  rolling back 0.0 s  undoing" in rows[0]  # the bar does not go back
    display.finished("01a", False, "rollback: refused")
    display.close()
    rows = display.render()
    assert rows[0].endswith("100%  ROLLBACK FAILED 0.0 s  rollback: refused")
    assert rows[1].endswith(" 30%  FAILED 0.0 s  adjust: boom more")
    assert rows[2].endswith("  0%  not started")


@pytest.mark.unit
def test_the_null_display_draws_nothing() -> None:
    display: Any = Display()
    display.begin("h", ["01a"])
    display.started("01a")
    display.progress("01a", {"progress": 5})
    display.finished("01a", True)
    display.close()


# -- the display keeps what matters (#16 point 10) -------------------------------------

@pytest.mark.unit
def test_a_long_message_keeps_its_end() -> None:
    """A counter such as (3/4) is at the end of a message: a cut takes the start."""
    display = LiveDisplay(FakeTerminal(), clock=lambda: 0.0, width=80)
    display.begin("h", ["10-web"])
    display.started("10-web")
    display.progress("10-web", {"progress": 50, "message":
                                "rolling out the new replica set to every zone (3/4)"})
    (row,) = display.render()
    assert len(row) <= 79 and row.endswith("zone (3/4)"), row
    assert "  ..." in row


@pytest.mark.unit
def test_a_silent_driver_shows_its_silence_against_its_limit() -> None:
    now = [0.0]
    display = LiveDisplay(FakeTerminal(), clock=lambda: now[0], width=100, line_limit=29)
    display.begin("h", ["20-prom"])
    display.started("20-prom", "measure")
    now[0] = 4.0
    assert "silent" not in display.render()[0]
    now[0] = 12.0
    assert "measuring 12.0 s  silent 12 s of 29 s" in display.render()[0]
    display.alive("20-prom")  # a byte on stderr is life too
    now[0] = 13.0
    assert "silent" not in display.render()[0]
    unlimited = LiveDisplay(FakeTerminal(), clock=lambda: now[0], width=100)
    unlimited.begin("h", ["20-prom"])
    unlimited.started("20-prom")
    now[0] = 30.0
    assert "silent 17 s (no limit)" in unlimited.render()[0]


@pytest.mark.unit
def test_a_run_ends_with_one_whole_line_per_driver() -> None:
    term = FakeTerminal()
    display = LiveDisplay(term, clock=lambda: 0.0, width=40)
    display.begin("h", ["01a", "02b", "03c"])
    display.started("01a")
    display.finished("01a", True)
    display.started("02b")
    display.finished("02b", False, "adjust: " + "a reason far longer than forty columns")
    display.close()
    assert screen(term.getvalue(), columns=200)[-4:] == [
        "  01a  done after 0.0 s",
        "  02b  FAILED after 0.0 s: adjust: a reason far longer than forty columns",
        "  03c  not started", ""]


EVIL = "\x1b[2J\x1b]0;pwned\x07"  # clear the screen, retitle the terminal, ring


@pytest.mark.unit
def test_what_drivers_wrote_cannot_drive_the_terminal_through_the_live_display() -> None:
    """Their messages, failures and file names, in the block and in the closing summary:
    escaped, as the journal's readers show them."""
    term = FakeTerminal()
    display = LiveDisplay(term, clock=lambda: 0.0, width=200)
    name = "01\x1bx"
    display.begin(f"adjusting {EVIL}", [name, "02b"])
    display.started(name)
    display.progress(name, {"progress": 5, "message": f"step {EVIL}"})
    assert all("\x1b" not in row and "\x07" not in row for row in display.render())
    assert "step \\x1b[2J\\x1b]0;pwned\\x07" in display.render()[0]
    display.finished(name, False, f"adjust: {EVIL}")
    display.started("02b")
    display.finished("02b", True)
    display.close()
    drawn = term.getvalue()
    assert EVIL not in drawn and "\x07" not in drawn and "01\x1bx" not in drawn
    summary = screen(drawn, columns=200)[-3:]
    assert summary[0] == "  01\\x1bx  FAILED after 0.0 s: adjust: \\x1b[2J\\x1b]0;pwned\\x07"
    assert "adjusting \\x1b[2J" in drawn


@pytest.mark.unit
def test_what_drivers_wrote_cannot_drive_the_terminal_through_the_verbose_trace() -> None:
    from aggregator.supervision.output import Output
    from aggregator.supervision.session import verbose_trace

    err = io.StringIO()
    verbose_trace(Output(-1, err))("01\x1bx", f"<- {{\"progress\": 1, \"message\": \"{EVIL}\"}}")
    assert "\x1b" not in err.getvalue() and "\x07" not in err.getvalue()
    assert "01\\x1bx: <- " in err.getvalue() and "\\x1b]0;pwned\\x07" in err.getvalue()


@pytest.mark.unit
def test_verbose_notes_are_stamped_from_the_process_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from aggregator.supervision import output as output_module

    monkeypatch.setattr(output_module, "process_age", lambda: 7.5)  # interpreter start-up
    err = io.StringIO()
    out = output_module.Output(-1, err)
    out.note("plain")
    out.stamp_notes()
    out.note("stamped")
    plain, stamped = err.getvalue().splitlines()
    assert plain == "servo-agg: plain"
    assert re.fullmatch(r"servo-agg: \[  7\.5\d\d\] stamped", stamped), stamped


# -- --help (#16 point 10) -------------------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize(("front", "prog", "other"), [
    (FrontEnd.ADJUST, "adjust", "./measure"), (FrontEnd.MEASURE, "measure", "./adjust"),
    (FrontEnd.ADJUST, "servo-agg", "./measure"),
    (FrontEnd.MEASURE, "servo-agg measure", "./adjust")])
def test_help_names_the_program_and_lists_everything(front: FrontEnd, prog: str,
                                                     other: str) -> None:
    text = build_parser(front, prog).format_help()
    assert text.startswith(f"usage: {prog} [-h]")
    for option in ("--version", "--info", "--query", "--describe", "--dry-run", "--check",
                   "--json", "-v, --verbose", "-h, --help", "app"):
        assert option in text, option
    assert f"the same program is {other} when run under that name" in text
    assert "servo-agg adjust ... or servo-agg measure ..." in text  # the subcommands
    assert "OPTUNE_IO_TIMEOUT" in text and "OPTUNE_VERBOSE_STDERR" in text
    assert "config.yaml" in text
    for doc in ("README.md", "docs/deploying.md", "docs/operator-tools.md",
                "docs/protocol.md", "docs/supervision.md", "docs/journal.md"):
        assert doc in text


@pytest.mark.unit
@pytest.mark.parametrize(("argv", "called"), [(["--bogus"], "servo-agg"),
                                              (["measure", "--bogus"], "servo-agg measure")])
def test_a_usage_error_points_at_the_help_of_the_program_as_called(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        argv: list[str], called: str) -> None:
    """cli.main in-process, named as the installed command (its --help through it, as
    called: test_packaging.py)."""
    monkeypatch.chdir(tmp_path)
    assert main(argv, program=str(tmp_path / "bin" / "servo-agg")) == 1
    error = json.loads(capfd.readouterr().out)
    assert error["reason"] == "bad-usage"
    assert f"(see {called} --help)" in error["message"]
