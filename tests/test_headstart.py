"""The head start: the first driver call(s) begin before trio is imported, and are then
supervised like any other; none runs twice (for every command: test_opening_calls.py;
through ./adjust here, with parallel queries), none runs that would not have run (a
refused request makes no Run: test_launch.py; through ./adjust: test_cli_e2e.py), and
one that is never taken up is killed and reaped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.process.fork import child_environment
from aggregator.process.headstart import Headstart
from aggregator.protocol.vocabulary import Call
from aggregator.root.discovery import Driver
from aggregator.supervision.control import RunControl
from aggregator.supervision.spec import CallSpec
from tests.support import TAG_VAR, real_supervisor, run_adjust, write_driver

pytestmark = pytest.mark.e2e

# Every start of this driver leaves one line in calls.log: which call, and the pid.
COUNTING = """#!/bin/sh
    name=${0##*/}
    printf '%s %s %s\\n' "$name" "$*" "$$" >> calls.log
    for arg do
        case $arg in --info) printf '{"version": "v-%s"}\\n' "$name"; exit 0;; esac
    done
    for arg do
        case $arg in
            --query)
                printf '{"components": {"%s": {"settings": {"x": {"value": 1}}}}}\\n' "$name"
                exit 0;;
        esac
    done
    cat > /dev/null
    echo '{"status": "ok", "reason": "success"}'
"""
#: A driver that only sleeps, in one process (the signal it gets is the sleep's).
SLEEPING = "exec sleep 60\n"


def calls(root: Path) -> list[str]:
    log = root / "calls.log"
    return [" ".join(line.split()[:-1]) for line in log.read_text().splitlines()] \
        if log.exists() else []


async def test_parallel_queries_run_each_driver_exactly_once(servo_root: Path,
                                                             tag: str) -> None:
    write_driver(servo_root, "01a", COUNTING)
    write_driver(servo_root, "02b", COUNTING)
    (servo_root / "config.yaml").write_text("aggregator:\n  parallel_queries: true\n")
    request = {"application": {"components": {"02b": {"settings": {"x": {"value": 2}}}}}}
    run = await run_adjust(servo_root, "app", tag=tag, stdin=json.dumps(request))
    assert run.final == {"status": "ok", "reason": "success"}, run.stderr
    assert sorted(calls(servo_root)) == ["01a --query app", "02b --query app", "02b app"]


async def test_a_supervised_call_takes_over_the_early_process(servo_root: Path,
                                                             tag: str) -> None:
    path = write_driver(servo_root, "01a", COUNTING)
    env = {**os.environ, TAG_VAR: tag}
    headstart: Headstart[CallSpec] = Headstart()
    spec = CallSpec(Driver("01a", path), Call.QUERY, ("--query", "app"))
    headstart.start(spec, spec.argv, servo_root, child_environment(env, servo_root))
    early_pid = next(iter(headstart.waiting_pids))
    sup = real_supervisor(servo_root, env, headstart=headstart)
    outcome = await sup.call(spec)
    assert outcome.problem is None and outcome.exit_code == 0
    assert outcome.result == {"components": {"01a": {"settings": {"x": {"value": 1}}}}}
    assert headstart.waiting_pids == frozenset()
    log = (servo_root / "calls.log").read_text().split()
    assert int(log[-1]) == early_pid  # the early process did the work: no second start


@pytest.mark.parametrize("stop", ["cancel", "terminate"])
async def test_a_stop_before_trio_reaches_the_head_started_driver_as_a_running_one(
        stop: str, servo_root: Path, tag: str) -> None:
    """servo's signal came while trio was being imported: the driver the head start runs
    is stopped under supervision (SIGUSR1 and its grace, or the kill cascade) and named."""
    path = write_driver(servo_root, "01sleep", SLEEPING, shebang="#!/bin/sh")
    env = {**os.environ, TAG_VAR: tag}
    spec = CallSpec(Driver("01sleep", path), Call.QUERY, ("--query", "app"))
    headstart: Headstart[CallSpec] = Headstart()
    headstart.start(spec, spec.argv, servo_root, child_environment(env, servo_root))
    control = RunControl()
    if stop == "cancel":
        control.cancel()
    else:
        control.terminate(signal.SIGTERM)
    sup = real_supervisor(servo_root, env, cancel_grace=0.5, control=control,
                          headstart=headstart)
    try:
        outcome = await sup.call(spec)
        taken = headstart.waiting_pids == frozenset()
    finally:
        headstart.discard_all()
    assert taken
    assert outcome.exit_code is not None  # it ran, and was stopped and reaped by its call
    expected = {"cancel": "canceled", "terminate": "terminated"}[stop]
    assert outcome.problem is not None and outcome.problem.reason == expected, outcome
    assert control.interrupted == ["01sleep"]


def test_an_early_start_nobody_takes_up_is_killed_and_reaped(servo_root: Path,
                                                             tag: str) -> None:
    path = write_driver(servo_root, "01sleep", SLEEPING, shebang="#!/bin/sh")
    headstart: Headstart[str] = Headstart()
    headstart.start("query", [str(path), "--query", "app"], servo_root,
                    {**os.environ, TAG_VAR: tag})
    (pid,) = headstart.waiting_pids
    headstart.discard_all()
    assert headstart.waiting_pids == frozenset()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped by discard_all
    assert not Path(f"/proc/{pid}").exists()


def test_a_driver_that_cannot_start_early_is_left_to_its_supervised_call(
    servo_root: Path, tag: str
) -> None:
    path = write_driver(servo_root, "01broken", "", shebang="#!/nonexistent/interpreter")
    headstart: Headstart[str] = Headstart()
    headstart.start("query", [str(path), "--query", "app"], servo_root, os.environ)
    assert headstart.waiting_pids == frozenset()  # run_call will report spawn-failed


def test_the_launch_starts_the_first_query_before_importing_trio(servo_root: Path,
                                                                 tag: str) -> None:
    """The point of it all: the first driver already runs while trio is being imported.

    A spy on `import trio` records the command lines of this process's children at the
    moment the import begins."""
    write_driver(servo_root, "01a", """
        import json, time
        time.sleep(0.5)  # still running when trio's import begins, whatever the machine
        print(json.dumps({"components": {"a": {"settings": {"x": {"value": 1}}}}}))
    """)
    script = (
        "import builtins, os, sys\n"
        "real_import = builtins.__import__\n"
        "def spy(name, *a, **k):\n"
        "    if name == 'trio' and 'trio' not in sys.modules and not os.path.exists('seen'):\n"
        "        kids = set()\n"
        "        for task in os.listdir('/proc/self/task'):\n"
        "            kids.update(open(f'/proc/self/task/{task}/children').read().split())\n"
        "        cmds = [open(f'/proc/{k}/cmdline', 'rb').read().replace(b'\\0', b' ')\n"
        "                for k in kids]\n"
        "        open('seen', 'wb').write(b'\\n'.join(cmds))\n"
        "    return real_import(name, *a, **k)\n"
        "builtins.__import__ = spy\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})\n"
        "from aggregator.entry.cli import main\n"
        "sys.exit(main(['--query', 'app']))\n"
    )
    env = {**os.environ, TAG_VAR: tag}
    done = subprocess.run([sys.executable, "-c", script], cwd=servo_root, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    children_at_import = (servo_root / "seen").read_text().splitlines()
    assert any("01a --query app" in line for line in children_at_import), children_at_import
