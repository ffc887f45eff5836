"""Nothing escapes a SIGKILLed aggregator: not a daemon that cleared its environment and
left the session, not the drivers (and their daemons) of an aggregator that is itself a
driver of the one killed.

A daemon with an empty environment carries no test tag, so these tests find what they
started through the pidfile the fault driver writes, and kill whatever they found,
whatever the outcome. Each runs as started (as root here: with the run's cgroup) and in a
mount namespace whose cgroup file system is read-only, as in a container (no cgroup can
be made: the process tree alone)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from aggregator.process.cgroup import RunCgroup, own_cgroup, remove_cgroup
from aggregator.process.linux import process_start_ticks
from tests.fault_support import (
    REQUEST,
    fault_root,
    install_fault,
    run_watched,
    started_by_fault,
    wait_until,
)
from tests.support import (
    ADJUST,
    REPO,
    TAG_VAR,
    AdjustRun,
    adjust_env,
    alive,
    run_adjust,
    write_driver,
)

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")]

# In a mount namespace of its own, every cgroup2 mount read-only (as docker mounts them),
# then the command: ./adjust where no cgroup can be made.
READ_ONLY_CGROUPS = r"""#!/bin/sh
awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' \
    /proc/self/mountinfo | while read -r m; do mount -o remount,bind,ro "$m" || exit 97; done \
    || exit 97
exec "$@"
"""


@pytest.fixture(params=["as-started", "read-only-cgroups"])
def adjust(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The ./adjust to run: as the tests run, or where no cgroup can be made."""
    if request.param == "as-started":
        return ADJUST
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a mount namespace")
    inside = tmp_path / "read-only-cgroups"
    inside.write_text(READ_ONLY_CGROUPS)
    wrapper = tmp_path / "adjust-without-cgroups"
    wrapper.write_text(f'#!/bin/sh\nexec unshare --mount --propagation private '
                       f'{inside} {ADJUST} "$@"\n')
    for script in (inside, wrapper):
        script.chmod(0o755)
    return wrapper


def ours(pid: int, tag: str, pidfile: Path) -> bool:
    """Still one of this test's processes (and not a pid reused since): it carries the
    tag, or, for the daemon, names the pidfile on its command line."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return f"{TAG_VAR}={tag}".encode() in environ or os.fsencode(pidfile) in cmdline


@contextlib.contextmanager
def killing_what_is_recorded(pidfile: Path, tag: str) -> Iterator[None]:
    """Whatever happens in the block, every recorded process of ours is SIGKILLed after."""
    try:
        yield
    finally:
        for started in started_by_fault(pidfile):
            if alive(started.pid) and ours(started.pid, tag, pidfile):
                with contextlib.suppress(OSError):
                    os.kill(started.pid, signal.SIGKILL)


def environ_of(pid: int) -> list[bytes]:
    try:
        return [e for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if e]
    except OSError:
        return []


def recorded(pidfile: Path, *roles: str) -> bool:
    return set(roles) <= {s.role for s in started_by_fault(pidfile)}


async def sigkill_the_aggregator_once(pidfile: Path, roles: tuple[str, ...], root: Path,
                                      tag: str, adjust: Path, **env: str) -> None:
    """Run an adjust; SIGKILL the aggregator once the fault driver recorded `roles`."""
    environment = adjust_env(tag, FAULT_PIDFILE=str(pidfile), **env)
    run, _ = await run_watched(root, "app", tag=tag, env=environment,
                               stdin=json.dumps(REQUEST), signals_after_start=(signal.SIGKILL,),
                               signal_when=lambda: recorded(pidfile, *roles), program=adjust)
    assert run.returncode == -signal.SIGKILL, run.stderr


async def assert_all_die(pidfile: Path, within: float = 10) -> None:
    started = started_by_fault(pidfile)
    assert await wait_until(lambda: not any(alive(s.pid) for s in started), within=within), \
        f"still running: {[s for s in started if alive(s.pid)]}"


async def test_an_envless_setsid_daemon_dies_with_its_sigkilled_aggregator(
        servo_root: Path, tag: str, adjust: Path) -> None:
    fault_root(servo_root)
    pidfile = servo_root / "fault.pids"
    with killing_what_is_recorded(pidfile, tag):
        await sigkill_the_aggregator_once(pidfile, ("daemon", "hanging"), servo_root, tag,
                                          adjust, FAULT_MODE="envless-daemon")
        (daemon,) = [s.pid for s in started_by_fault(pidfile) if s.role == "daemon"]
        assert not environ_of(daemon)  # the test really is about an env-less daemon
        await assert_all_die(pidfile)


DAEMON = ("envless-daemon", ("daemon", "hanging"))
CHILDREN = ("children-then-hang", ("child", "setsid-child", "hanging"))


@pytest.mark.parametrize(("adjust", "nested_mode", "roles"), [
    # as started, the run's cgroup holds whatever the inner aggregator's drivers started,
    # in the inner run's own cgroup below it: what they did makes no difference there
    ("as-started", *DAEMON),
    # the process trees and the inner run's marks: each takes a way of its own
    ("read-only-cgroups", *DAEMON), ("read-only-cgroups", *CHILDREN),
], indirect=["adjust"])
async def test_a_nested_aggregators_drivers_and_what_they_started_die_with_the_outer_one(
        servo_root: Path, tag: str, adjust: Path, nested_mode: str,
        roles: tuple[str, ...]) -> None:
    """02fault execs another ./adjust over a sub-root whose own fault driver starts a
    daemon (or a child and a setsid() child, marked by the inner run only) and hangs; the
    outer aggregator is SIGKILLed."""
    fault_root(servo_root)
    pidfile = servo_root / "fault.pids"
    with killing_what_is_recorded(pidfile, tag):
        await sigkill_the_aggregator_once(
            pidfile, roles, servo_root, tag, adjust, FAULT_MODE="nested-aggregator",
            FAULT_AGGREGATOR=str(ADJUST), FAULT_NESTED_MODE=nested_mode)
        started = [s.role for s in started_by_fault(pidfile) if s.call == "adjust"]
        # the outer fault driver (now the inner aggregator), the inner one, what it started
        assert started.count("driver") == 2 and set(roles) <= set(started), started
        await assert_all_die(pidfile)


# -- the start-time check ---------------------------------------------------------------

REPORT_THEN_DIE = """
import os, sys
from aggregator.process.sentinel import start_sentinel
sentinel = start_sentinel()
os.write(sentinel.write_end, (sys.argv[1] + " " + sys.argv[2] + "\\n").encode())
print(sentinel.pid, flush=True)
os._exit(0)   # like SIGKILL: no dismissal
"""


@pytest.mark.parametrize("reported", ["its start time", "a later start time"])
def test_the_sentinel_kills_a_reported_pid_only_while_it_is_the_same_process(
        tag: str, reported: str) -> None:
    """A throw-away aggregator reports a process (not its child, not marked, not in its
    cgroup) and dies: the sentinel kills it only if the start time reported is its own;
    with another, the pid stands for a process that has gone and been replaced."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                               env={**os.environ, TAG_VAR: tag}, start_new_session=True)
    try:
        start = process_start_ticks(sleeper.pid) + (reported != "its start time")
        done = subprocess.run(
            [sys.executable, "-c", REPORT_THEN_DIE, str(sleeper.pid), str(start)],
            env={**os.environ, TAG_VAR: tag, "PYTHONPATH": str(REPO)}, capture_output=True,
            text=True, timeout=30, check=True)
        sentinel = int(done.stdout)
        deadline = time.monotonic() + 10
        while alive(sentinel) and time.monotonic() < deadline:
            time.sleep(0.02)  # the sentinel is nobody's child here: nothing to wait on
        assert not alive(sentinel), "the sentinel did not finish"
        assert (sleeper.poll() is None) == (reported != "its start time")
    finally:
        sleeper.kill()
        sleeper.wait()


# -- the run's cgroup -----------------------------------------------------------------

def cgroup_here() -> bool:
    """True where this process may make a cgroup below its own (as ./adjust will)."""
    probe = RunCgroup.create(f"probe-{os.getpid()}")
    if probe is None:
        return False
    remove_cgroup(probe.path)
    return True


needs_cgroup = pytest.mark.skipif(not cgroup_here(), reason="no cgroup can be made here")


def cgroup_of(pid: int) -> str:
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return ""
    return next((line[3:] for line in lines if line.startswith("0::")), "")


@needs_cgroup
async def test_a_driver_and_its_daemon_run_in_the_runs_cgroup_which_the_next_run_removes(
        servo_root: Path, tag: str) -> None:
    fault_root(servo_root)
    pidfile = servo_root / "fault.pids"
    env = adjust_env(tag, FAULT_MODE="envless-daemon", FAULT_PIDFILE=str(pidfile),
                     OPTUNE_IO_TIMEOUT="3")
    seen: dict[str, str] = {}
    with killing_what_is_recorded(pidfile, tag):
        async with trio.open_nursery() as nursery:
            runs: list[AdjustRun] = []

            async def run() -> None:
                runs.append(await run_adjust(servo_root, "app", tag=tag, env=env,
                                             stdin=json.dumps(REQUEST)))

            nursery.start_soon(run)
            assert await wait_until(lambda: recorded(pidfile, "daemon", "hanging"))
            seen = {s.role: cgroup_of(s.pid) for s in started_by_fault(pidfile)
                    if s.call == "adjust"}
        assert runs[0].final["reason"] == "timeout"
        await assert_all_die(pidfile)
    run_cgroup = seen["hanging"]
    assert Path(run_cgroup).name.startswith("servo-agg."), seen
    assert seen["daemon"] == run_cgroup, seen
    left = cgroup_dir(run_cgroup)
    # Any servo-agg's next run removes it, another test's on another worker too (rmdir
    # refuses a populated cgroup, so gone is empty as well)
    with contextlib.suppress(FileNotFoundError):
        assert (left / "cgroup.procs").read_text() == "", "a process outlived the run"
    again = await run_adjust(servo_root, "--query", "app", tag=tag, env=adjust_env(tag))
    assert again.returncode == 0, again.stderr
    assert not left.exists(), "the next run did not remove the cgroup of the one before"


def cgroup_dir(path: str) -> Path:
    """The directory of the cgroup `path` (as /proc/PID/cgroup names it)."""
    parent = own_cgroup(Path("/proc/self/cgroup").read_text(),
                        Path("/proc/self/mountinfo").read_text())
    assert parent is not None
    mine = cgroup_of(os.getpid())
    return parent / os.path.relpath(path, mine)


LEFT_IN_THE_CGROUP = """
import os, subprocess, sys
from aggregator.process.sentinel import start_sentinel
sentinel = start_sentinel()
assert sentinel.cgroup is not None
sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                           start_new_session=True)
sentinel.dismiss()
sleeper.wait()
print(sleeper.returncode, flush=True)
"""


@needs_cgroup
def test_a_normal_end_leaves_nothing_in_the_runs_cgroup(tag: str) -> None:
    """Whatever is still in the run's cgroup when the sentinel is dismissed (here: a
    process the throw-away aggregator started and did not reap) is ours, and killed."""
    done = subprocess.run([sys.executable, "-c", LEFT_IN_THE_CGROUP],
                          env={**os.environ, TAG_VAR: tag, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.split() == [str(-signal.SIGKILL)], done.stderr


HANG_IN_QUERY = """#!/bin/sh
case " $* " in *" --query "*) echo yes > hanging; exec sleep 60;; esac
echo '{"version": "1.0"}'
"""


@needs_cgroup
async def test_the_daemon_of_a_driver_already_gone_dies_with_the_cgroup(
        servo_root: Path, tag: str) -> None:
    """What only the cgroup catches: under parallel queries, 01fault's query leaves an
    env-less daemon and exits while 02hang's query still runs, so no orphan sweep has
    run yet: the daemon is the aggregator's own child, below no driver, when the
    aggregator is SIGKILLed."""
    install_fault(servo_root, "01fault")
    write_driver(servo_root, "02hang", HANG_IN_QUERY)
    (servo_root / "config.yaml").write_text("aggregator:\n  parallel_queries: true\n")
    pidfile = servo_root / "fault.pids"

    def ready() -> bool:
        started = started_by_fault(pidfile)
        drivers = [s.pid for s in started if s.role == "driver"]
        return (recorded(pidfile, "daemon") and (servo_root / "hanging").exists()
                and bool(drivers) and not any(alive(p) for p in drivers))

    with killing_what_is_recorded(pidfile, tag):
        env = adjust_env(tag, FAULT_MODE="envless-daemon-then-ok", FAULT_PHASE="query",
                         FAULT_PIDFILE=str(pidfile))
        run, _ = await run_watched(servo_root, "app", tag=tag, env=env,
                                   stdin=json.dumps(REQUEST),
                                   signals_after_start=(signal.SIGKILL,), signal_when=ready)
        assert run.returncode == -signal.SIGKILL, run.stderr
        await assert_all_die(pidfile)


TWO_RUNS = """
import os
from aggregator.process.sentinel import start_sentinel
paths = []
for _ in range(2):
    sentinel = start_sentinel()
    paths.append(str(sentinel.cgroup.path))
    sentinel.dismiss()
print(*paths)
print([name for name in os.listdir(paths[0]) if name.startswith("servo-agg.")])
"""


@needs_cgroup
def test_a_process_that_runs_twice_uses_one_cgroup(tag: str) -> None:
    """Tests (and anything else that runs a Run in process) run many in one process: each
    run takes up the cgroup the last one left it in, instead of one more inside it."""
    done = subprocess.run([sys.executable, "-c", TWO_RUNS],
                          env={**os.environ, TAG_VAR: tag, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=30, check=True)
    paths, nested = done.stdout.splitlines()
    first, second = paths.split()
    assert first == second and Path(first).name.startswith("servo-agg.")
    assert nested == "[]"
