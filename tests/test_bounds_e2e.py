"""Every driver bounded, end to end: ./adjust run as servo runs it, against drivers that
hang, chatter forever, take too much memory or fork too much."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from aggregator.process.cgroup import own_cgroup
from tests.support import run_adjust, simple_driver, write_driver

pytestmark = pytest.mark.e2e

# -- resource limits ------------------------------------------------------------------------

MIB = 1 << 20


def allocating_driver(component: str, megabytes: int, *, in_call: str = "adjust") -> str:
    """Owns `component`; in `in_call` (adjust or query) it fills `megabytes` MB of memory
    before answering, and records that it got there in <component>.done."""
    descriptor = {"application": {"components": {component: {"settings": {
        "x": {"value": 1}}}}}}
    return f"""
        import json, sys
        if "--info" in sys.argv:
            print(json.dumps({{"version": "1", "has_cancel": False}}))
            sys.exit(0)
        def fill():
            block = bytearray({megabytes} * 1024 * 1024)  # zeroed: every page touched
            open({component!r} + ".done", "w").write(str(len(block)))
        if "--query" in sys.argv:
            if {in_call!r} == "query":
                fill()
            print(json.dumps({descriptor!r}))
            sys.exit(0)
        json.load(sys.stdin)
        fill()
        print(json.dumps({{"status": "ok", "reason": "success"}}))
        """


def request_for(*components: str) -> str:
    return json.dumps({"application": {"components": {
        c: {"settings": {"x": {"value": 2}}} for c in components}}})


async def test_a_driver_over_its_memory_limit_is_out_of_memory_and_its_sibling_unaffected(
        servo_root: Path, tag: str) -> None:
    """300 MB under a 64 MB limit: by the call's cgroup where the host offers the memory
    controller, by RLIMIT_DATA here (a failed allocation, a MemoryError)."""
    write_driver(servo_root, "10-hog", allocating_driver("hog", 300))
    write_driver(servo_root, "20-fine", allocating_driver("fine", 20))
    (servo_root / "config.yaml").write_text("aggregator:\n  limits: {memory: 64M}\n")
    run = await run_adjust(servo_root, "-v", "app", tag=tag, stdin=request_for("hog", "fine"))
    assert run.returncode == 1, run.stderr
    assert run.final["reason"] == "out-of-memory"
    assert run.final["failed_drivers"] == ["10-hog"]
    first = run.final["message"].splitlines()[0]
    assert first.startswith("10-hog: failed: adjust: ran out of memory")
    assert "its memory limit of 64 MiB" in first
    assert not (servo_root / "hog.done").exists()
    assert (servo_root / "fine.done").read_text() == str(20 * MIB)  # under the same limit
    # -v: how this host enforces it (every -v note stamped from the process's start)
    assert re.search(r"^servo-agg: \[ *[0-9.]+\] limits\.memory: ", run.stderr, re.M)
    # -v: what each call used, measured (the fine one held its 20 MB at its peak)
    fine_exit = next(line for line in run.stderr.splitlines()
                     if "20-fine: exit 0" in line and "peak" in line)
    peak = fine_exit.split("peak ")[1].split(" ")
    assert peak[1] == "MiB" and float(peak[0]) >= 20, fine_exit


async def test_a_head_started_query_is_held_to_the_limit_too(servo_root: Path,
                                                             tag: str) -> None:
    """The first --query is forked before trio loads: it gets its limits all the same."""
    write_driver(servo_root, "10-hog", allocating_driver("hog", 300, in_call="query"))
    (servo_root / "config.yaml").write_text(
        "aggregator:\n  drivers:\n    10-hog: {limits: {memory: 64M}}\n")
    run = await run_adjust(servo_root, "--query", "app", tag=tag)
    assert run.returncode == 1, run.stderr
    assert run.final["reason"] == "out-of-memory"
    assert run.final["message"].startswith("10-hog: failed: query: ran out of memory")


def controllers_for_runs() -> set[str]:
    """The cgroup v2 controllers a run's cgroup would be offered here: those our own
    cgroup enables for its children, where we may make one below it at all."""
    try:
        own = own_cgroup(Path("/proc/self/cgroup").read_text(),
                         Path("/proc/self/mountinfo").read_text())
        if own is None or not os.access(own / "cgroup.procs", os.W_OK):
            return set()
        return set((own / "cgroup.subtree_control").read_text().split())
    except OSError:
        return set()


needs_pids_controller = pytest.mark.skipif(
    "pids" not in controllers_for_runs(),
    reason="no cgroup v2 pids controller for servo-agg's cgroup on this host (it has "
           "pids only as cgroup v1, or not for this cgroup), and the fallback, "
           "RLIMIT_NPROC, does not bind root: a pids limit cannot be shown to hold here")


@needs_pids_controller
async def test_a_driver_that_reaches_its_pids_limit_fails_saying_so(servo_root: Path,
                                                                    tag: str) -> None:
    write_driver(servo_root, "10-forker", """
        import json, subprocess, sys
        if "--info" in sys.argv:
            print(json.dumps({"version": "1", "has_cancel": False}))
            sys.exit(0)
        children = []
        try:
            for _ in range(32):
                children.append(subprocess.Popen(["sleep", "30"]))
        except OSError as exc:
            print(json.dumps({"status": "failed", "reason": "fork-failed",
                              "message": str(exc)}), flush=True)
            sys.exit(1)
        finally:
            for child in children:
                child.kill()
                child.wait()
        print(json.dumps({"application": {"components": {}}}))
        """)
    (servo_root / "config.yaml").write_text("aggregator:\n  limits: {pids: 8}\n")
    run = await run_adjust(servo_root, "--query", "app", tag=tag)
    assert run.returncode == 1, run.stderr
    assert run.final["reason"] == "fork-failed"  # its own failure
    assert "its pids limit of 8 was reached" in run.final["message"]


# -- time: servo's T from config.yaml, and a deadline -------------------------------------

#: The settings each driver below owns (request_for sets x to 2).
SETTINGS = {"x": {"value": 1}}


async def test_with_no_t_from_servo_io_timeout_and_a_deadline_end_what_never_ends(
        servo_root: Path, tag: str) -> None:
    """io_timeout in config.yaml stands in for servo's T (2: a silent driver is killed after
    1 s); a progress line every 0.1 s is life to that line limit, not progress: its own
    deadline of 1 s ends it all the same, while its sibling runs within the global one of
    60 s. (The arithmetic of each, on MockClock: test_bounds_timing.py.)"""
    write_driver(servo_root, "10-chatty", simple_driver("c", SETTINGS, adjust="""while :; do
    echo '{"progress": 1, "message": "almost there"}'
    sleep 0.1
done"""))
    write_driver(servo_root, "20-fine", simple_driver("fine", SETTINGS, adjust="""touch fine.done
echo '{"status": "ok", "reason": "success"}'"""))
    write_driver(servo_root, "30-hang", simple_driver("h", SETTINGS, adjust="exec sleep 3600"))
    (servo_root / "config.yaml").write_text(
        "aggregator:\n  io_timeout: 2\n  deadline: 60\n  drivers:\n    10-chatty: {deadline: 1}\n")
    run = await run_adjust(servo_root, "app", tag=tag, stdin=request_for("c", "fine", "h"))
    assert run.returncode == 1, run.stderr
    assert (run.final["reason"], run.final["failed_drivers"]) == (
        "timeout", ["10-chatty", "30-hang"])
    chatty, hang = (line for line in run.final["message"].splitlines()
                    if line.startswith(("10-chatty: ", "30-hang: ")))
    assert re.fullmatch(r"10-chatty: failed: adjust: ran 1\.\d s, past its deadline of 1 s; "
                        r"killed", chatty), run.final["message"]
    assert hang == ("30-hang: failed: adjust: sent nothing for 1.0 s on stdout or stderr "
                    "(limit 1 s from io_timeout in config.yaml); killed"), run.final["message"]
    assert (servo_root / "fine.done").exists()  # the sibling ran, within its own deadline
