"""How the sentinel tells the run's processes from everyone else's: the run marks (nested
runs keep the outer ones), the start time that tells a process from a later one with its
pid, the reports it reads from the aggregator, and where the run's cgroup goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.process.cgroup import RunCgroup, own_cgroup, stale
from aggregator.process.lineage import RUN_MARK_VAR, Known, carries_mark, nested_mark
from aggregator.process.linux import ProcStat, parse_stat
from aggregator.process.sentinel import DISMISS, Sentinel, containment, ours, parse_reports

pytestmark = pytest.mark.unit

NO_SUCH_PID = 2**22 + 17  # above pid_max's ceiling: never a process


def stat(pid: int, start: int, state: str = "S", ppid: int = 1) -> ProcStat:
    return ProcStat(pid, state, ppid, start)


def test_a_stat_line_is_read_whatever_the_command_name_holds() -> None:
    line = (b"4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 99 0 0 0 1 2 0 0 20 0 1 0 "
            b"987654 10000000 300 18446744073709551615")
    assert parse_stat(line) == ProcStat(4242, "S", 17, 987654)
    assert parse_stat(b"4242 (cut short") is None
    assert parse_stat(b"") is None


def test_a_pid_reused_by_another_process_is_not_the_one_reported() -> None:
    reported = Known(pid=4242, start=1000)
    assert reported.found_in({4242: stat(4242, 1000)})
    assert not reported.found_in({4242: stat(4242, 1234)})  # same pid, a later process
    assert not reported.found_in({4242: stat(4242, 1000, state="Z")})  # nothing to kill
    assert not reported.found_in({})


def test_only_a_reported_process_with_its_own_start_time_is_a_root() -> None:
    check = ours({NO_SUCH_PID: 1000}, mark="1.2")
    assert check(stat(NO_SUCH_PID, 1000))
    assert not check(stat(NO_SUCH_PID, 1001))  # the pid, reused: not ours
    assert not check(stat(NO_SUCH_PID + 1, 1000))


def test_a_nested_run_keeps_the_marks_of_the_runs_around_it() -> None:
    outer = nested_mark(None, "100.5")
    inner = nested_mark(outer, "200.9")
    assert (outer, inner) == ("100.5", "100.5 200.9")
    environ = b"PATH=/bin\0" + f"{RUN_MARK_VAR}={inner}".encode() + b"\0HOME=/"
    assert carries_mark(environ, "100.5") and carries_mark(environ, "200.9")
    assert not carries_mark(environ, "100.50")  # a mark is a whole word, not a prefix
    assert not carries_mark(environ, "100")
    assert not carries_mark(b"OTHER=100.5\0", "100.5")
    assert not carries_mark(b"", "100.5")


def test_reports_are_whole_lines_and_garbage_is_skipped() -> None:
    known, dismissed, rest = parse_reports(b"12 34\nnot a report\n56 7")
    assert (known, dismissed, rest) == ([Known(12, 34)], False, b"56 7")
    known, dismissed, rest = parse_reports(rest + b"8\n" + DISMISS + b"\n99 1\n")
    assert (known, dismissed) == ([Known(56, 78)], True)


HYBRID = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
UNIFIED = ("25 1 0:22 / / rw - ext4 /dev/sda1 rw\n"
           "30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev - cgroup2 cgroup2 rw,nsdelegate\n")


@pytest.mark.parametrize(("cgroup", "mountinfo", "expected"), [
    ("0::/\n", HYBRID, "/sys/fs/cgroup/unified"),
    ("12:pids:/x\n0::/system.slice/servo.service\n", UNIFIED,
     "/sys/fs/cgroup/system.slice/servo.service"),
    # mounted from inside a container's cgroup: the mount's root is a prefix of ours
    ("0::/docker/abc/sub\n",
     "30 25 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "/sys/fs/cgroup/sub"),
    ("0::/a b\n", "30 25 0:26 / /cg\\040root rw - cgroup2 none rw\n", "/cg root/a b"),
    ("0::/docker/other\n",
     "30 25 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", None),
    ("0::/\n", HYBRID.replace("rw,relatime", "ro,relatime"), None),  # docker's read-only
    ("4:memory:/x\n", HYBRID, None),  # cgroup v1 only
    ("0::/\n", "25 1 0:22 / / rw - ext4 /dev/sda1 rw\n", None),  # v2 not mounted
])
def test_the_run_cgroup_goes_below_our_own_where_a_writable_mount_shows_it(
        cgroup: str, mountinfo: str, expected: str | None) -> None:
    found = own_cgroup(cgroup, mountinfo)
    assert found == (Path(expected) if expected is not None else None)


def test_only_the_cgroup_of_a_run_that_is_gone_is_stale() -> None:
    alive = {(100, 5)}

    def running(pid: int, start: int) -> bool:
        return (pid, start) in alive

    assert stale("servo-agg.100.6", running)  # pid 100 now is a later process
    assert stale("servo-agg.101.5", running)
    assert not stale("servo-agg.100.5", running)  # its aggregator still runs
    for other in ("servo-agg.probe-7.0", "servo-agg.100", "system.slice", "cgroup.procs"):
        assert not stale(other, running)


def test_the_operator_is_told_what_ends_the_drivers_if_servo_agg_is_sigkilled() -> None:
    """--check and -v name the tier in force: the cgroup, the tree walk, or neither."""
    whole, text = containment(Sentinel(1, -1, RunCgroup(Path("/sys/fs/cgroup/x/run"))))
    assert whole and "own cgroup (servo-agg.<pid>.<start>) below /sys/fs/cgroup/x," in text
    whole, text = containment(Sentinel(1, -1, None))
    assert whole and "every process tree below a driver" in text and "no cgroup" in text
    whole, text = containment(None)
    assert not whole and "children may stay" in text
