"""The entry point before trio, without a process (tests/support.launch_before_trio, and
launch.run itself where nothing gets as far as a Run): the command named once, a stop while
the request is read ending as every stopped run does, and what every command decides alike
before any driver starts: which read stdin, what a closed stdin or stdout does, the
drivers directory (and --version without it), a bad request or none at all, the room its
drivers need at once, a program that lost its execute bit. (Each through ./adjust or
./measure once, with the command that bit: test_stdio_e2e.py, test_cli_e2e.py,
test_limits_e2e.py, test_config_mistakes.py.)"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from aggregator.entry import launch
from aggregator.limits import MAX_REQUEST_BYTES
from aggregator.protocol.environment import line_limit_for
from aggregator.root.front_end import FrontEnd
from aggregator.supervision.signals import StoppedEarly
from tests.support import (
    AGGREGATOR,
    assert_refused_for_closed_stdout,
    launch_before_trio,
    write_driver,
)

pytestmark = pytest.mark.unit


def test_a_stop_while_the_request_is_read_is_written_as_any_stopped_run(
        tmp_path: Path) -> None:
    launched = launch_before_trio(tmp_path, ["app"], FrontEnd.ADJUST,
                                  StoppedEarly(signal.SIGTERM))
    assert launched.code == 128 + signal.SIGTERM
    assert launched.error == {
        "status": "aborted", "reason": "terminated",
        "message": "servo-agg received SIGTERM while reading the request; no driver was "
                   "started"}
    # and its line for people, as Output.failure writes every failed final line
    assert launched.stderr == ("servo-agg: aborted: servo-agg received SIGTERM while "
                               "reading the request; no driver was started\n")


REQUESTS = {FrontEnd.ADJUST: b'{"application": {"components": {}}}',
            FrontEnd.MEASURE: b'{"metrics": [], "control": {}}'}


@pytest.mark.parametrize(("front", "argv", "command"), [
    (FrontEnd.ADJUST, ["app"], "adjust"),
    (FrontEnd.ADJUST, ["--query", "app"], "query"),
    (FrontEnd.ADJUST, ["--version"], "version"),
    (FrontEnd.ADJUST, ["--dry-run", "app"], "dry-run"),
    (FrontEnd.MEASURE, ["app"], "measure"),
    (FrontEnd.MEASURE, ["--describe", "app"], "describe"),
    (FrontEnd.MEASURE, ["--version"], "version"),
    (FrontEnd.MEASURE, ["--dry-run", "app"], "dry-run"),
])
def test_the_job_runs_the_command_the_record_names(tmp_path: Path, front: FrontEnd,
                                                    argv: list[str], command: str) -> None:
    launched = launch_before_trio(tmp_path, argv, front, REQUESTS[front])
    # the job was built, and its command checked against the facts
    assert launched.code == -1, launched.stderr
    assert launched.facts.command == command


@pytest.mark.parametrize(("argv", "says"), [
    (["--failed"], "--failed and --since go with --history or --last"),
    (["--since", "5m"], "--failed and --since go with --history or --last"),
    (["--hist"], "--last, --show and --history are spelled out in full"),
])
def test_a_reader_option_without_its_reader_says_what_it_goes_with(
        tmp_path: Path, argv: list[str], says: str) -> None:
    launched = launch_before_trio(tmp_path, argv, FrontEnd.ADJUST)
    assert launched.code == 1
    error = launched.error
    assert error["reason"] == "bad-usage" and error["message"].startswith(says)


#: Each command, by front-end and arguments, and whether it takes a request on stdin.
COMMANDS = [
    (FrontEnd.ADJUST, ["app"], True),
    (FrontEnd.ADJUST, ["--dry-run", "app"], True),
    (FrontEnd.ADJUST, ["--query", "app"], False),
    (FrontEnd.ADJUST, ["--version"], False),
    (FrontEnd.MEASURE, ["app"], True),
    (FrontEnd.MEASURE, ["--dry-run", "app"], True),
    (FrontEnd.MEASURE, ["--describe", "app"], False),
]


@pytest.mark.parametrize(("front", "argv", "reads"), COMMANDS)
def test_only_a_command_that_takes_a_request_reads_stdin_and_within_the_cap(
        tmp_path: Path, front: FrontEnd, argv: list[str], reads: bool) -> None:
    """One read for the commands that take a request: up to the cap, within the line
    limit from T, naming the front-end (what read_request then does with a closed stdin,
    /dev/full or a request that never ends: test_request.py, and test_stdio_e2e.py and
    test_cli_e2e.py through ./adjust); the others never touch stdin."""
    (tmp_path / "config.yaml").write_text("aggregator:\n  io_timeout: 5\n")
    launched = launch_before_trio(tmp_path, argv, front, REQUESTS[front])
    assert launched.code == -1, launched.stderr
    assert launched.reads == ([(line_limit_for(5), str(front), MAX_REQUEST_BYTES)] if reads
                              else [])


@pytest.mark.parametrize(("front", "argv", "reads"), COMMANDS)
def test_a_closed_stdin_is_no_request_and_nothing_else(
        tmp_path: Path, front: FrontEnd, argv: list[str], reads: bool) -> None:
    launched = launch_before_trio(tmp_path, argv, front, stdin_closed=True)
    assert launched.reads == []
    if not reads:  # nothing to read: the command runs as ever
        assert launched.code == -1, launched.stderr
        return
    assert launched.code == 1
    error = launched.error
    assert (error["status"], error["reason"]) == ("failed", "bad-input")
    assert error["message"] == (f"{front} request: stdin was closed, so there is no "
                                "request; no driver was run")


@pytest.mark.parametrize(("front", "stdin"), [
    (FrontEnd.ADJUST, b"not json"), (FrontEnd.ADJUST, b"[]"),
    (FrontEnd.ADJUST, b'{"application": {}}'), (FrontEnd.MEASURE, b'{"metrics": 1}')])
def test_a_bad_request_is_refused_before_the_run_is_made(tmp_path: Path, front: FrontEnd,
                                                         stdin: bytes) -> None:
    """So not even a head start begins (through ./adjust: test_headstart.py)."""
    write_driver(tmp_path, "01a", "exit 3\n", shebang="#!/bin/sh", folder=f"{front}.d")
    launched = launch_before_trio(tmp_path, ["app"], front, stdin)
    assert launched.code == 1
    assert launched.final["reason"] == "bad-input"
    assert launched.run is None


@pytest.mark.parametrize(("front", "argv", "reads"), COMMANDS)
def test_every_command_s_drivers_are_found_room_before_any_starts(
        tmp_path: Path, front: FrontEnd, argv: list[str], reads: bool) -> None:
    """The Run is asked for room for as many drivers as the job runs at once (how many
    that is for each command: test_descriptor_budget.py), before any head start; a
    refusal then starts nothing (through ./measure: test_limits_e2e.py)."""
    (tmp_path / "config.yaml").write_text("aggregator:\n  parallel_queries: true\n")
    for folder in ("adjust.d", "measure.d"):
        for name in ("01a", "02b", "03c"):
            write_driver(tmp_path, name, "exit 3\n", shebang="#!/bin/sh", folder=folder)
    launched = launch_before_trio(tmp_path, argv, front, REQUESTS[front])
    assert launched.code == -1, launched.stderr
    assert launched.job is not None and launched.room == launched.job.at_once()


@pytest.mark.parametrize(("front", "argv", "command"), [
    (FrontEnd.ADJUST, ["app"], "adjust"),
    (FrontEnd.ADJUST, ["--query", "app"], "query"),
    (FrontEnd.ADJUST, ["--version"], "version"),
    (FrontEnd.ADJUST, ["--check", "app"], "check"),
    (FrontEnd.ADJUST, ["--dry-run", "app"], "dry-run"),
    (FrontEnd.MEASURE, ["app"], "measure"),
    (FrontEnd.MEASURE, ["--describe", "app"], "describe"),
])
def test_a_closed_stdout_runs_nothing_says_so_and_is_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        front: FrontEnd, argv: list[str], command: str) -> None:
    """launch.run itself (cli.py found fd 1 closed and put /dev/null there): refused
    before anything is read or run, whatever the command, and recorded as any refused
    run. (--info and the readers, which write no record: cli.py; both ways through
    ./adjust: test_stdio_e2e.py.)"""
    (tmp_path / "adjust.d").mkdir()
    (tmp_path / "measure.d").mkdir()
    monkeypatch.chdir(tmp_path)
    assert launch.run(argv, front, stdout_closed=True) == 1
    out, err = capfd.readouterr()
    assert out == ""
    assert_refused_for_closed_stdout(tmp_path, err, front, command)


@pytest.mark.parametrize("argv", [["app"], ["--query", "app"]])
def test_no_drivers_directory_is_one_error_for_every_command(tmp_path: Path,
                                                             argv: list[str]) -> None:
    """(But --version, which still says its own: the next test; through ./adjust, as every
    refusal reaches servo: test_cli_e2e.py's bad request.)"""
    launched = launch_before_trio(tmp_path, argv, request=REQUESTS[FrontEnd.ADJUST],
                                  drivers_dirs=False)
    assert launched.code == 1
    error = launched.error
    assert (error["status"], error["reason"]) == ("failed", "no-drivers-dir")
    assert "adjust.d" in error["message"]
    assert "servo-agg: error (no-drivers-dir): " in launched.stderr


def test_version_without_a_drivers_directory_still_says_its_own(tmp_path: Path) -> None:
    """An install is checked before drivers are added: its own version shows, and the
    missing directory too (exit 1, as every other command would fail)."""
    launched = launch_before_trio(tmp_path, ["--version"], drivers_dirs=False)
    assert launched.code == 1
    assert launched.lines == [f"{AGGREGATOR} (no drivers: adjust.d/ is missing)"]
    assert "servo-agg: error (no-drivers-dir): " in launched.stderr


@pytest.mark.parametrize("front", [FrontEnd.ADJUST, FrontEnd.MEASURE])
def test_a_command_that_takes_a_request_needs_an_app_id_and_says_how_servo_gives_it(
        tmp_path: Path, front: FrontEnd) -> None:
    launched = launch_before_trio(tmp_path, [], front, REQUESTS[front])
    assert launched.code == 1 and launched.reads == []
    error = launched.error
    assert error["reason"] == "bad-usage" and f"'{front} <app>'" in error["message"]


def test_a_measure_override_is_checked_against_the_drivers_found(tmp_path: Path) -> None:
    """An override its driver could not take is refused before the Run, so before any
    driver starts (every other way a measure request is refused, and what each says:
    test_measure_protocol.py)."""
    write_driver(tmp_path, "20prom", "exit 3\n", shebang="#!/bin/sh", folder="measure.d")
    request = b'{"metrics": [], "control": {"userdata": {"20prom": {"control": [1]}}}}'
    launched = launch_before_trio(tmp_path, ["app"], FrontEnd.MEASURE, request)
    assert launched.code == 1 and launched.run is None
    error = launched.error
    assert (error["status"], error["reason"]) == ("failed", "bad-input")
    assert "20prom's override) must be an object" in error["message"]
    assert "servo-agg: error (bad-input): " in launched.stderr


@pytest.mark.parametrize(("front", "argv", "reads"), COMMANDS)
def test_a_program_that_lost_its_execute_bit_is_named_by_every_command(
        tmp_path: Path, front: FrontEnd, argv: list[str], reads: bool) -> None:
    """#16 point 1 (before, ./measure returned ok without its metrics): a note on stderr,
    with the fix, where the job's drivers are found, and the run goes on without it. Data
    beside the drivers gets no word. (What the note says: test_discovery.py; --check's
    [warn]: test_check.py; --info says nothing: test_info.py; a note on stderr as servo
    gets it, through ./adjust: test_config_mistakes.py.)"""
    folder = f"{front}.d"
    write_driver(tmp_path, "10-ab", "exit 3\n", shebang="#!/bin/sh", folder=folder)
    write_driver(tmp_path, "20-prom", "exit 3\n", shebang="#!/bin/sh", folder=folder,
                 mode=0o644)
    (tmp_path / folder / "prom.yaml").write_text("url: http://prom\n")
    launched = launch_before_trio(tmp_path, argv, front, REQUESTS[front])
    assert launched.code == -1, launched.stderr
    [note] = launched.stderr.splitlines()  # and none of prom.yaml
    assert note.startswith(f"servo-agg: warning: {folder}/20-prom is not executable, "
                           "though it starts with #!")
    assert f"chmod +x {folder}/20-prom" in note
    assert launched.job is not None and [d.name for d in launched.job.drivers] == ["10-ab"]
