"""Odd stdio at start, as only real fds show it: stdin, stdout or stderr closed, or
pointing at /dev/full. A clear message where one can still be written, never a traceback;
a closed stderr never sends notes to stdout; and the SIGKILL guard holds whichever fd is
closed. Each once per way through the code (cli.py's, before --info, and the launch's);
what the launch then decides for every command alike (which read stdin, a closed stdin
or stdout refused and recorded): test_launch.py, in the test's own process."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest

from aggregator.root.front_end import FrontEnd
from tests.fault_support import fault_root, run_watched, started_by_fault, wait_until
from tests.support import (
    ADJUST,
    adjust_env,
    alive,
    assert_refused_for_closed_stdout,
    simple_driver,
    write_driver,
)

pytestmark = pytest.mark.e2e

#: argv of each command, and whether its stdout is JSON lines
COMMANDS: dict[str, tuple[tuple[str, ...], bool]] = {
    "adjust": (("app",), True),
    "query": (("--query", "app"), True),
    "info": (("--info", "app"), True),
    "check": (("--check", "app"), False),
}
#: Each way a command treats stdin, and the command that stands for it: the launch reads
#: the request (adjust, for dry-run and measure too), or --info answers before the launch
#: and never reads it. (Which commands the launch has read stdin, and within what:
#: test_launch.py; the others never touch it.)
READERS = ["adjust", "info"]
#: Where a closed fd 1 is refused: before --info in cli.py, and in the launch for every
#: other command (each of them, and its record: test_launch.py).
CLOSED_STDOUT = ["adjust", "info"]
#: Each way a command writes, and the command that stands for it: under trio, through
#: servo's channel and the run's notes (adjust, with a driver that fails so that there
#: are notes, stands for query, version and dry-run, which write the same way), --check's
#: report written after the run, and --info's answer before anything loads.
WRITERS = ["adjust", "check", "info"]
GOOD_REQUEST = json.dumps({"application": {"components": {"web": {"settings": {
    "cpu": {"value": 2}}}}}})


def wrapper(tmp: Path, redirect: str) -> Path:
    """An executable that runs ./adjust with one standard fd closed or redirected (as
    servo's own parent, a supervisor or a shell might leave it)."""
    path = tmp / "adjust-with-odd-stdio"
    path.write_text(f'#!/bin/sh\nexec "{ADJUST}" "$@" {redirect}\n')
    path.chmod(0o755)
    return path


def good_root(root: Path) -> Path:
    write_driver(root, "10web", simple_driver("web", {"cpu": {"value": 1, "min": 0,
                                                              "max": 4}}, log="web.log"))
    return root


def run(root: Path, tmp: Path, redirect: str, command: str,
        tag: str) -> subprocess.CompletedProcess[bytes]:
    argv, _ = COMMANDS[command]
    return subprocess.run([str(wrapper(tmp, redirect)), *argv], cwd=root,
                          env=adjust_env(tag), input=GOOD_REQUEST.encode(),
                          capture_output=True, timeout=60)


def stdout_lines(done: subprocess.CompletedProcess[bytes], command: str) -> list[str]:
    """What a run wrote on stdout, each line checked; timings and the journal's size
    (--check's, which change from run to run) blanked."""
    lines = [re.sub(r"(\.servo-agg/journal\.jsonl:).*", r"\1 _",
                    re.sub(r"\d+\.\d+ s\b", "_ s", line))
             for line in done.stdout.decode("utf-8").splitlines()]
    if COMMANDS[command][1]:
        assert all(isinstance(json.loads(line), dict) for line in lines), lines
    return lines


def test_a_closed_stdin_is_no_request(servo_root: Path, tmp_path: Path, tag: str) -> None:
    """cli.py finds fd 0 closed before anything (it puts /dev/null there, for --info as
    for the rest), and the launch refuses it to a command that reads a request; any other
    runs as ever (each command: test_launch.py; --query with fd 0 closed, through
    ./adjust: test_the_sigkill_guard_holds_with_a_standard_fd_closed)."""
    done = run(good_root(servo_root), tmp_path, "<&-", "adjust", tag)
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    assert done.returncode == 1
    [line] = stdout_lines(done, "adjust")
    final = json.loads(line)
    assert final["reason"] == "bad-input"
    assert "stdin was closed, so there is no request" in final["message"]
    assert not (servo_root / "web.log").exists()


@pytest.mark.parametrize("command", CLOSED_STDOUT)
def test_a_closed_stdout_runs_nothing_and_says_so_on_stderr(
        command: str, servo_root: Path, tmp_path: Path, tag: str) -> None:
    """Refused, and recorded as any refused run (--info writes no record)."""
    done = run(good_root(servo_root), tmp_path, ">&-", command, tag)
    assert done.returncode == 1
    assert_refused_for_closed_stdout(servo_root, done.stderr.decode(), FrontEnd.ADJUST,
                                     command)


def failing_root(root: Path) -> Path:
    """good_root and a driver that fails every call, so that there are notes."""
    write_driver(good_root(root), "20bad", "exit 3\n", shebang="#!/bin/sh")
    return root


@pytest.mark.parametrize("command", WRITERS)
def test_with_stderr_closed_or_full_notes_go_nowhere_never_to_stdout(
        command: str, servo_root: Path, tmp_path: Path, tag: str) -> None:
    failing_root(servo_root)
    normal = run(servo_root, tmp_path, "", command, tag)
    if command not in ("info", "check"):  # the others have something to note
        assert b"servo-agg: " in normal.stderr
    for redirect in ("2>&-", "2>/dev/full"):  # closed, and every write failing
        odd = run(servo_root, tmp_path, redirect, command, tag)
        assert odd.returncode == normal.returncode, redirect
        assert stdout_lines(odd, command) == stdout_lines(normal, command), redirect


@pytest.mark.parametrize("command", WRITERS)
def test_stdout_on_dev_full_is_one_clear_message_and_a_failure(
        command: str, servo_root: Path, tmp_path: Path, tag: str) -> None:
    done = run(good_root(servo_root), tmp_path, ">/dev/full", command, tag)
    stderr = done.stderr.decode()
    assert done.returncode != 0, stderr
    assert "Traceback" not in stderr, stderr
    assert "writing to stdout failed (No space left on device)" in stderr, stderr


@pytest.mark.parametrize("command", READERS)
def test_stdin_on_dev_full_is_a_request_too_big(command: str, servo_root: Path,
                                                tmp_path: Path, tag: str) -> None:
    """/dev/full reads as endless zeros: refused at the cap, without reading on."""
    done = run(good_root(servo_root), tmp_path, "</dev/full", command, tag)
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    lines = stdout_lines(done, command)
    if command == "adjust":
        assert done.returncode == 1
        assert "more than 16,777,216 bytes" in json.loads(lines[-1])["message"]
        assert not (servo_root / "web.log").exists()
    else:  # nothing read: it answers as ever
        assert done.returncode == 0


@pytest.mark.parametrize("fd", [0, 2])
async def test_the_sigkill_guard_holds_with_a_standard_fd_closed(
        fd: int, servo_root: Path, tmp_path: Path, tag: str) -> None:
    """The sentinel's pipe landed on the closed fd, was overwritten, and the guard exited
    at once: what the driver started outlived a SIGKILLed aggregator."""
    fault_root(servo_root)
    pidfile = servo_root / "fault.pids"
    env = adjust_env(tag, FAULT_MODE="children-then-hang", FAULT_PIDFILE=str(pidfile),
                     FAULT_PHASE="query")  # the query: a closed stdin still gets that far

    def hanging() -> bool:
        return {"child", "setsid-child", "hanging"} <= {s.role for s in
                                                        started_by_fault(pidfile)}

    run_, _ = await run_watched(servo_root, "--query", "app", tag=tag, env=env,
                                signals_after_start=(signal.SIGKILL,), signal_when=hanging,
                                program=wrapper(tmp_path, f"{fd}<&-" if fd == 0 else "2>&-"))
    assert run_.returncode == -signal.SIGKILL
    started = [s for s in started_by_fault(pidfile) if s.call == "query"]
    assert await wait_until(lambda: not any(alive(s.pid) for s in started), within=10), \
        [s for s in started if alive(s.pid)]
