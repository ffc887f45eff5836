"""The aggregator killed outright (SIGKILL: no cleanup runs) must not leave its running
driver working unattended: each driver gets a parent-death signal (linux.py), armed from
the main thread (spawn.py), since Linux ties it to the thread that forked the child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from aggregator.process import driver_process as spawn
from aggregator.process import linux
from tests.fault_support import (
    REQUEST,
    fault_root,
    run_watched,
    started_by_fault,
    wait_until,
)
from tests.support import REPO, TAG_VAR, adjust_env, alive

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")]

# A driver (or any child) that prints its parent-death signal as the kernel has it.
REPORT_PDEATHSIG = textwrap.dedent("""
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    value = ctypes.c_int(-1)
    libc.prctl(2, ctypes.byref(value), 0, 0, 0)  # PR_GET_PDEATHSIG
    print(value.value, os.getppid(), flush=True)
""")


def run_python(script: str, tag: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, TAG_VAR: tag, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


async def test_a_driver_dies_with_an_aggregator_killed_outright(servo_root: Path,
                                                               tag: str) -> None:
    fault_root(servo_root)
    pidfile = servo_root / "fault.pids"
    env = adjust_env(tag, FAULT_MODE="hang", FAULT_PIDFILE=str(pidfile))  # no time limit

    def hanging() -> bool:
        return any(s.role == "hanging" for s in started_by_fault(pidfile))

    run, _ = await run_watched(servo_root, "app", tag=tag, env=env,
                               stdin=json.dumps(REQUEST), signals_after_start=(signal.SIGKILL,),
                               signal_when=hanging)
    assert run.returncode == -signal.SIGKILL
    (driver,) = [s.pid for s in started_by_fault(pidfile) if s.role == "hanging"]
    assert await wait_until(lambda: not alive(driver), within=10), \
        "the driver kept running after the aggregator was killed"


def test_the_guard_arms_sigkill_as_the_parent_death_signal(tag: str) -> None:
    guard = linux.parent_death_guard(signal.SIGKILL)
    assert guard is not None
    out = subprocess.run([sys.executable, "-c", REPORT_PDEATHSIG], preexec_fn=guard,
                         capture_output=True, text=True, timeout=30, check=True,
                         env={**os.environ, TAG_VAR: tag})
    sig, parent = map(int, out.stdout.split())
    assert (sig, parent) == (signal.SIGKILL, os.getpid())


def test_without_the_guard_there_is_no_parent_death_signal(tag: str) -> None:
    out = subprocess.run([sys.executable, "-c", REPORT_PDEATHSIG], capture_output=True,
                         text=True, timeout=30, check=True, env={**os.environ, TAG_VAR: tag})
    assert out.stdout.split()[0] == "0"


# An intermediate process starts a sleeping grandchild (guarded or not), prints its pid,
# and waits to be killed; the test kills it and watches the grandchild.
INTERMEDIATE = textwrap.dedent("""
    import signal, subprocess, sys, time
    from aggregator.process.linux import parent_death_guard
    guard = parent_death_guard(signal.SIGKILL) if sys.argv[1] == "guarded" else None
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             preexec_fn=guard)
    print(child.pid, flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("guarded", [True, False])
async def test_the_guarded_child_dies_with_its_parent(guarded: bool, tag: str) -> None:
    env = {**os.environ, TAG_VAR: tag, "PYTHONPATH": str(REPO)}
    parent = await trio.lowlevel.open_process(
        [sys.executable, "-c", INTERMEDIATE, "guarded" if guarded else "plain"],
        stdout=subprocess.PIPE, env=env)
    try:
        assert parent.stdout is not None
        with trio.fail_after(30):
            child = int((await parent.stdout.receive_some(100)).split()[0])
        assert alive(child)
    finally:
        parent.kill()
        await parent.wait()
    died = await wait_until(lambda: not alive(child), within=3 if guarded else 1)
    if not guarded:
        os.kill(child, signal.SIGKILL)  # the control case: it would have lived on
    assert died is guarded


def test_the_guard_refuses_to_run_a_child_whose_parent_already_changed(tag: str) -> None:
    """Armed too late (the parent died first), the child exits 127 instead of living on."""
    script = textwrap.dedent("""
        import os, signal, subprocess, sys
        from aggregator.process.linux import parent_death_guard
        guard = parent_death_guard(signal.SIGKILL)   # made for this process as the parent
        pid = os.fork()
        if pid == 0:   # ... but used from another one: as if the parent were gone
            code = subprocess.call([sys.executable, "-c", "print('ran')"], preexec_fn=guard)
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    out = run_python(script, tag)
    assert out.stdout.split() == ["127"], out


def test_a_process_can_become_a_child_subreaper(tag: str) -> None:
    script = ("from aggregator.process.linux import become_subreaper, is_subreaper\n"
              "before = is_subreaper()\n"
              "print(before, become_subreaper(), is_subreaper())\n")
    assert run_python(script, tag).stdout.split() == ["False", "True", "True"]


def test_process_age_counts_from_the_process_start(tag: str) -> None:
    script = ("import time\n"
              "time.sleep(0.5)\n"
              "from aggregator.process.linux import process_age\n"
              "print(process_age())\n")
    age = float(run_python(script, tag).stdout)
    assert 0.45 <= age < 30
    assert linux.process_age(os.getpid()) > 0
    assert linux.process_age(2**22 + 1) == 0.0  # no such process: unknown, not an error


async def test_drivers_are_forked_on_the_main_thread_with_the_guard(
        servo_root: Path, tag: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver forked by a worker thread would be killed when trio retires that thread
    (after 10 s idle); spawn must fork on the main thread, and arm the guard."""
    forked_on: list[threading.Thread] = []
    real_popen = subprocess.Popen  # spawn calls it as subprocess.Popen

    def recording_popen(argv: Any, *args: Any, **kwargs: Any) -> Any:
        forked_on.append(threading.current_thread())
        return real_popen(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    driver = servo_root / "adjust.d" / "10report"
    driver.write_text(f"#!{sys.executable}\n{REPORT_PDEATHSIG}")
    driver.chmod(0o755)
    proc = await spawn.open_driver([str(driver)], servo_root, {**os.environ, TAG_VAR: tag})
    try:
        with trio.fail_after(30):
            out = b""
            while chunk := await proc.stdout.receive_some(100):
                out += chunk
            await proc.wait_exited()
    finally:
        proc.reap()
        await proc.aclose_pipes()
    assert forked_on == [threading.main_thread()]
    sig, parent = map(int, out.split())
    assert (sig, parent) == (signal.SIGKILL, os.getpid())


async def test_what_the_driver_started_dies_too(servo_root: Path, tag: str) -> None:
    """PDEATHSIG reaches only the driver; the sentinel forked at start kills the rest: its
    child in its group and its child in a session of its own."""
    fault_root(servo_root)
    pidfile = servo_root / "fault.pids"
    env = adjust_env(tag, FAULT_MODE="children-then-hang", FAULT_PIDFILE=str(pidfile))

    def hanging() -> bool:
        return {"child", "setsid-child", "hanging"} <= {s.role for s in
                                                        started_by_fault(pidfile)}

    run, _ = await run_watched(servo_root, "app", tag=tag, env=env,
                               stdin=json.dumps(REQUEST), signals_after_start=(signal.SIGKILL,),
                               signal_when=hanging)
    assert run.returncode == -signal.SIGKILL
    started = [s for s in started_by_fault(pidfile) if s.call == "adjust"]
    assert await wait_until(lambda: not any(alive(s.pid) for s in started), within=10), \
        [s for s in started if alive(s.pid)]


def test_the_sentinel_kills_marked_processes_once_its_parent_is_gone(tag: str) -> None:
    """In a throw-away parent: start the sentinel, start a marked sleeper that setsid()s,
    exit without any cleanup; the sleeper must die."""
    script = textwrap.dedent("""
        import os, subprocess, sys
        from aggregator.process.lineage import RUN_MARK_VAR, run_mark
        from aggregator.process.sentinel import start_sentinel
        sentinel = start_sentinel()
        env = {**os.environ, RUN_MARK_VAR: run_mark()}
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                   env=env, start_new_session=True)
        print(sentinel.pid, sleeper.pid, flush=True)
        os._exit(0)   # like SIGKILL: no finally, no atexit
    """)
    out = run_python(script, tag)
    sentinel, sleeper = map(int, out.stdout.split())
    assert sentinel != sleeper
    deadline = time.monotonic() + 10
    while (alive(sleeper) or alive(sentinel)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(sleeper), "the marked process outlived its aggregator"
    assert not alive(sentinel), "the sentinel did not exit after its work"


def test_a_dismissed_sentinel_is_reaped_and_kills_nothing(tag: str) -> None:
    """The normal end: the sentinel stands down at once, is reaped by its parent (no
    zombie for init, or for a servo running as PID 1, to collect), and kills nothing: not
    even a marked process (started before the run's cgroup, so that it is not in it)."""
    script = textwrap.dedent("""
        import os, subprocess, sys
        from aggregator.process.lineage import RUN_MARK_VAR, run_mark
        from aggregator.process.sentinel import start_sentinel
        env = {**os.environ, RUN_MARK_VAR: run_mark()}
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                   env=env, start_new_session=True)
        sentinel = start_sentinel()
        sentinel.dismiss()
        try:
            os.waitpid(sentinel.pid, os.WNOHANG)
            reaped = False
        except ChildProcessError:
            reaped = True
        print(sentinel.pid, sleeper.pid, reaped, sleeper.poll() is None, flush=True)
        sleeper.kill()
        sleeper.wait()
    """)
    out = run_python(script, tag)
    sentinel, _, reaped, sleeper_alive = out.stdout.split()
    assert reaped == "True", "dismiss() must reap the sentinel"
    assert sleeper_alive == "True", "a dismissed sentinel must not kill marked processes"
    assert not alive(int(sentinel))
